"""The adaptive observation's search history, by hand and through the env."""

from __future__ import annotations

import numpy as np
import pytest

from legal_hpo_env.backends.recorded import RecordedBackend
from legal_hpo_env.env import LegalHPOEnv, observation_layout
from legal_hpo_env.history import SearchHistory, history_layout
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE
from support import recorded_table

K = len(SPACE)
G = sum(len(d.grid) for d in SPACE.dimensions)


def entry(features: list[float], name: str) -> float:
    return features[history_layout().index(name)]


def test_the_history_records_incumbent_previous_move_and_every_value_tried():
    history = SearchHistory()
    assert len(history.features()) == len(history_layout()) == 2 * K + 3 + 2 * G
    assert history.features() == [0.0] * (2 * K + 1) + [0.5, 0.0] + [0.0] * (2 * G)  # incumbent, previous: none
    a = DEFAULT_RECIPE.replace(learning_rate=1e-4, batch_size=16)
    b = a.replace(learning_rate=1e-3)
    history.record(DEFAULT_RECIPE, a, 0.6, diverged=False)
    history.record(a, b, 0.4, diverged=False)
    f = history.features()
    assert f[:K] == pytest.approx(SPACE.normalise(a)) and entry(f, "incumbent_score") == 0.6  # a is still best
    assert f[K + 1 : 2 * K + 1] == pytest.approx(SPACE.normalise(a))  # the move came from a
    assert entry(f, "last_move_effect") == pytest.approx((0.4 - 0.6 + 1) / 2) and entry(f, "last_move_improved") == 0
    assert entry(f, "tried/learning_rate=0.0001") == entry(f, "tried/learning_rate=0.001") == 1.0
    assert entry(f, "tried/learning_rate=3e-05") == 0.0 and entry(f, "tried/batch_size=16") == 1.0
    assert entry(f, "best/learning_rate=0.0001") == 0.6 and entry(f, "best/learning_rate=0.001") == 0.4
    assert entry(f, "best/batch_size=16") == 0.6  # the best of both trials at batch 16
    history.record(b, b.replace(learning_rate=1e-2), 0.0, diverged=True)
    f = history.features()
    assert entry(f, "tried/learning_rate=0.01") == 1.0 and entry(f, "best/learning_rate=0.01") == 0.0
    assert entry(f, "last_move_improved") == 0.0 and entry(f, "incumbent_score") == 0.6
    assert all(0.0 <= v <= 1.0 for v in f)


def test_the_adaptive_observation_through_the_env(tmp_path):
    backend = RecordedBackend(path=recorded_table(tmp_path / "t.json.gz"))
    env = LegalHPOEnv(task="t", backend=backend, action_mode="delta", budget=6, observation="adaptive")
    layout = observation_layout("adaptive")
    assert env.observation_space.shape == (len(layout),) and layout[: len(observation_layout())] == observation_layout()
    basic = LegalHPOEnv(task="t", backend=backend, action_mode="delta", budget=6)
    for episode in range(2):  # a reset forgets the last episode's history
        obs, _ = env.reset(seed=episode)
        base, _ = basic.reset(seed=episode)
        assert np.array_equal(obs[: len(base)], base) and obs[len(base) + 2 * K + 1] == 0.5
        best = 0.0
        for _ in range(6):
            action = env.action_space.sample()
            obs, _, _, _, info = env.step(action)
            base, *_ = basic.step(action)
            assert obs in env.observation_space and np.array_equal(obs[: len(base)], base)
            best = info["best_score"] or best
            assert obs[layout.index("incumbent_score")] == pytest.approx(best)
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)
    with pytest.raises(ValueError, match="observation='full'"):
        LegalHPOEnv(task="t", backend=backend, observation="full")
