"""The env's fast step path against the definitions it shortcuts.

The step path keeps per grid point and per replayed result what it needs (see
``legal_hpo_env.env._Point`` and ``_Outcome``); these tests recompute each step from the
table, the space and the reward functions, the way the env defines it, and check that the
observation (bit for bit), the info and the reward are those, and that nothing a step
hands out is shared with the caches.
"""

from __future__ import annotations

import math
import pickle
import random

import gymnasium as gym
import numpy as np
import pytest

import legal_hpo_env  # noqa: F401
from legal_hpo_env.backends.recorded import RecordedBackend
from legal_hpo_env.backends.table import TableBackend
from legal_hpo_env.env import LegalHPOEnv
from legal_hpo_env.history import SearchHistory
from legal_hpo_env.rewards import shaped_reward
from legal_hpo_env.space import SPACE, HyperParams
from support import recorded_table

K = len(SPACE)


@pytest.fixture(scope="module")
def packaged() -> RecordedBackend:
    return RecordedBackend()


def expected_step(env: LegalHPOEnv, backend, before: HyperParams, state: dict, seed: int, action_config: dict):
    """Observation, reward and info of one step, from the table and the definitions alone."""
    task = env.view.task
    config = HyperParams(**action_config)
    result = backend.replay(task, config, seed)
    best = state["best"]
    reward = shaped_reward(env.reward_kind, result.dev_score, best[0] if best else 0.0, diverged=result.diverged,
                           seconds=0.0 if result.from_store else result.seconds, cost_penalty=env.cost_penalty,
                           diverged_penalty=env.diverged_penalty, landscape=backend.landscape(task))
    state["trials"] += 1
    if state["history"] is not None:
        state["history"].record(before, config, result.dev_score, result.diverged)
    if not result.diverged and (best is None or result.dev_score > best[0]):
        expected_mean = backend.mean_score(task, config)
        land = backend.landscape(task)
        state["best"] = best = (result.dev_score, config, result)
        state["incumbent"] = {"best_config": config.to_dict(), "best_score": result.dev_score,
                              "regret": land.regret(expected_mean),
                              "regret_to_median": land.regret_to_median(expected_mean)}
    final = result.train_loss[-1] if result.train_loss else math.nan
    info = {"task": task, "config": config.to_dict(), "trial_seed": seed, "dev_score": result.dev_score,
            "dev_curve": list(result.dev_curve), "dev_accuracy": result.dev_accuracy,
            "dev_macro_f1": result.dev_macro_f1, "train_loss": final, "diverged": result.diverged,
            "from_store": result.from_store, "seconds": result.seconds, "trials": state["trials"],
            **state["incumbent"]}
    if state["trials"] >= env.budget:
        info["best_test_score"] = best[2].test_score if best else 0.0
    loss = 1.0 if result.diverged or not math.isfinite(final) else final / (1.0 + final)
    obs = SPACE.normalise(config) + [
        min(1.0, max(0.0, result.dev_score)), min(1.0, max(0.0, best[0])) if best else 0.0, loss,
        state["trials"] / env.budget, 1.0 if result.diverged else 0.0, *state["features"],
    ]
    if state["history"] is not None:
        obs += state["history"].features()
    return np.array(obs, dtype=np.float32), float(reward), info


def same_info(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], float) and math.isnan(a[key]):
            assert math.isnan(b[key]), key
        else:
            assert a[key] == b[key] and type(a[key]) is type(b[key]), key


@pytest.mark.parametrize("action_mode", ["delta", "single", "direct"])
@pytest.mark.parametrize("observation", ["basic", "adaptive"])
@pytest.mark.parametrize("reward", ["score", "improvement", "regret"])
def test_every_step_is_what_the_table_and_the_definitions_give(packaged, action_mode, observation, reward):
    env = LegalHPOEnv(task=["unfair_tos", "scotus"], backend=packaged, action_mode=action_mode,
                      observation=observation, reward=reward, budget=6, start="random", cost_penalty=0.001)
    env.action_space.seed(0)
    for episode in range(8):
        obs, info = env.reset(seed=episode)
        config = HyperParams(**info["config"])
        state = {"best": None, "incumbent": {"best_config": None, "best_score": None}, "trials": 0,
                 "features": LegalHPOEnv._encode_task(packaged.meta_features(info["task"])),
                 "history": SearchHistory() if observation == "adaptive" else None}
        assert obs.tobytes() == np.array(
            SPACE.normalise(config) + [0.0] * 5 + state["features"]
            + (state["history"].features() if state["history"] else []), dtype=np.float32).tobytes()
        terminated = False
        while not terminated:
            obs, reward_, terminated, truncated, info = env.step(env.action_space.sample())
            want_obs, want_reward, want_info = expected_step(env, packaged, config, state, info["trial_seed"],
                                                             info["config"])
            assert obs.dtype == np.float32 and obs.tobytes() == want_obs.tobytes()
            assert reward_ == want_reward and truncated is False
            same_info(info, want_info)
            config = HyperParams(**info["config"])


def test_direct_actions_decode_as_the_space_does(packaged):
    env = LegalHPOEnv(backend=packaged, action_mode="direct", budget=1000)
    env.reset(seed=0)
    # ties of the rounding ((u + 1) / 2 * (n - 1) half way between two indices), the ends, zero
    edges = [-1.0, -0.75, -0.5, -0.25, -0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1 / 12 - 1, np.nextafter(-1, 0)]
    rng = random.Random(0)
    actions = [np.array([rng.choice(edges) for _ in range(K)], np.float32) for _ in range(300)]
    actions += [np.array([rng.uniform(-1, 1) for _ in range(K)], np.float32) for _ in range(300)]
    for action in actions:
        info = env.step(action)[4]
        decoded = SPACE.decode_unit(action.tolist())
        assert info["config"] == env.hp_space.from_indices(env.hp_space.to_indices(decoded)).to_dict()


def test_what_a_step_returns_is_the_callers_to_change(packaged):
    actions = [np.array([2, 0, 1, 1, 2, 1, 2]), np.array([0, 2, 2, 1, 0, 1, 0]), np.ones(K, np.int64)] * 3
    kept, changed = (LegalHPOEnv(backend=packaged, budget=4, observation="adaptive") for _ in range(2))
    for env in (kept, changed):
        env.reset(seed=0)
    for episode in range(3):
        if episode:
            same_info(kept.reset(seed=episode)[1], changed.reset(seed=episode)[1])
        for action in actions[:4]:
            want = kept.step(action)
            got = changed.step(action)
            assert want[0].tobytes() == got[0].tobytes() and want[1:4] == got[1:4]
            same_info(want[4], got[4])
            obs, info = got[0], got[4]  # scribble over everything handed out
            obs[:] = 0.5
            for key in ("config", "best_config"):
                if info.get(key) is not None:
                    info[key]["learning_rate"] = -1.0
                    info[key].clear()
            info["dev_curve"].append(2.0)
            info.clear()


class _Overridden(TableBackend):
    """A table whose replay is its own: the env must ask it every step, not its table."""

    calls = 0

    def replay(self, task, config, seed):
        type(self).calls += 1
        runs = self.runs(task, config)
        return runs[(seed + 1) % len(runs)]


def test_a_backend_that_overrides_replay_is_asked_every_step(tmp_path):
    table = RecordedBackend(path=recorded_table(tmp_path / "t.json.gz"))
    backend = _Overridden([r for t in table.tasks for c in table.configurations(t) for r in table.runs(t, c)])
    env = LegalHPOEnv(task="t", backend=backend, budget=5, action_mode="single", trial_seeds=2)
    env.reset(seed=0)
    for action in [2, 2, 0, 1, 2]:
        info = env.step(action)[4]
        run = backend.runs("t", HyperParams(**info["config"]))[(info["trial_seed"] + 1) % 2]
        assert info["dev_score"] == run.dev_score and info["dev_curve"] == run.dev_curve
    assert _Overridden.calls == 5


def test_the_history_writes_its_features_as_float32(packaged):
    history = SearchHistory()
    rng = random.Random(0)
    points = packaged.configurations("unfair_tos")
    out = np.zeros(len(history.features()), np.float32)
    for step in range(200):
        if step % 40 == 0:
            history.reset()
        history.record(rng.choice(points), rng.choice(points), rng.choice([0.0, 0.3, 0.7, 1.2, -0.1]),
                       diverged=rng.random() < 0.2)
        history.write(out)
        assert out.tobytes() == np.array(history.features(), np.float32).tobytes()


def test_an_env_pickled_mid_episode_goes_on_alike():
    env = gym.make("LegalHPO-v0", observation="adaptive", budget=30)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):
        env.step(env.action_space.sample())
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    for _ in range(15):
        action = env.action_space.sample()
        want, got = env.unwrapped.step(action), copy.step(action)
        assert want[0].tobytes() == got[0].tobytes() and want[1:4] == got[1:4]
        same_info(want[4], got[4])
