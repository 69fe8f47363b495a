"""ASHA in process (agents.asha): Optuna's successive halving over the env's grid, epochs as the resource."""

from __future__ import annotations

import gymnasium as gym
import pytest

import legal_hpo_env  # noqa: F401
from agents import make_searcher
from agents.asha import ASHA, asha_rungs
from legal_hpo_env.space import HyperParams
from support import CURVE_TASK, curve_table


def test_asha_rungs_snap_the_milestones_to_the_epochs_grid():
    assert asha_rungs((1, 2, 3, 5, 8), 3) == [1, 3, 8]
    assert asha_rungs((1, 2, 3, 5, 8), 2) == [1, 2, 5, 8]
    assert asha_rungs((1, 2, 3), 3) == [1, 3]
    assert asha_rungs((3,), 3) == [3]


def test_asha_is_a_seeded_baseline_on_the_envs_grid_and_budget():
    backend = curve_table()
    env = gym.make("LegalHPO-v0", task=CURVE_TASK, backend=backend, budget=12, action_mode="direct", trial_seeds=2)
    run = make_searcher("asha").run(env, seed=0)
    assert run.method == "asha" and run.trials == 12 == len(run.dev_scores) == len(run.best_curve)
    for config, score in zip(run.configs, run.dev_scores):  # grid points the env scores, at the epochs reached
        assert config["epochs"] in (1, 3)
        assert score in [r.dev_score for r in backend.runs(CURVE_TASK, HyperParams.from_dict(config))]
    stopped = [c for c in run.configs if c["epochs"] == 1]
    assert stopped and len(stopped) < run.trials, "ASHA should stop some trials at the first rung, not all"
    assert run.best_score == max(run.dev_scores) == run.best_curve[-1]
    assert run.best_curve == sorted(run.best_curve) and run.best_seed in (0, 1)
    # recorded cost: the seconds of the epochs each trial reached (1 s per recorded epoch)
    assert run.trial_seconds == sum(c["epochs"] for c in run.configs)
    again = ASHA().run(env, seed=0)
    assert (again.configs, again.dev_scores) == (run.configs, run.dev_scores)
    assert ASHA().run(env, seed=1).configs != run.configs


def test_asha_stops_the_trials_behind_their_rung():
    """Every trial ASHA let through a rung scored there at least as well as the median of that rung so far."""
    backend = curve_table()
    env = gym.make("LegalHPO-v0", task=CURVE_TASK, backend=backend, budget=30, action_mode="direct", trial_seeds=2)
    run = ASHA().run(env, seed=3)
    first_rung = []
    for config in run.configs:
        score = backend.mean_score(CURVE_TASK, HyperParams.from_dict({**config, "epochs": 1}))
        if config["epochs"] == 3 and first_rung:
            assert score >= sorted(first_rung)[len(first_rung) // 2] - 0.011  # seed noise of the table: 0.01
        first_rung.append(score)


def test_asha_refuses_a_reduction_factor_of_one_or_less():
    for eta in (1, 0.5, float("nan"), "3", 2.5):
        with pytest.raises(ValueError, match="reduction_factor"):
            ASHA(reduction_factor=eta)
    assert ASHA(reduction_factor=4.0).reduction_factor == 4
