"""Fuzzing LegalHPO-v0 with hypothesis: random and extreme actions, valid and invalid,
resets at any moment, across action modes, rewards, extreme arguments and backends.

Whatever an agent sends, every observation lies in the observation space, every reward
is finite, and no exception escapes except the ``ValueError`` that rejects an action
outside the action space, after which the episode goes on as if it had not been sent.
Each test asserts how many env steps it took; run with ``-s`` for the totals.
"""

from __future__ import annotations

import json
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import legal_hpo_env  # noqa: F401  (registers the env)
from legal_hpo_env.backends.recorded import RecordedBackend, available_tables
from legal_hpo_env.config import ACTION_MODES, MAX_PENALTY
from legal_hpo_env.space import HyperParams
from support import recorded_table, report_figure, write_classification_csv

#: No example database (it would be written into the checkout) and no per-example
#: deadline (a live trial takes a variable tenth of a second).
FUZZ = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# -- strategies --------------------------------------------------------------------

EDGE_FLOATS = [-1.0, 1.0, 0.0, -0.0, 1e-45, -1e-45, 0.99999994, -0.99999994, 1 / 3]
BAD_FLOATS = [math.nan, math.inf, -math.inf, 1.0000001, -1.5, 1e30, -3.4e38]


def as_given(values: st.SearchStrategy, k: int) -> st.SearchStrategy:
    """A list of values, sent as a Python list or as a numpy array of a fitting dtype."""
    return values.flatmap(lambda v: st.sampled_from([v, np.asarray(v)]))


def valid_actions(mode: str, k: int) -> st.SearchStrategy:
    if mode == "delta":
        return as_given(st.lists(st.integers(0, 2), min_size=k, max_size=k), k)
    if mode == "single":
        return st.integers(0, 2 * k).flatmap(lambda a: st.sampled_from([a, np.int64(a), np.int32(a), np.array(a)]))
    unit = st.one_of(st.floats(-1.0, 1.0, width=32), st.sampled_from(EDGE_FLOATS))
    return st.lists(unit, min_size=k, max_size=k).flatmap(
        lambda v: st.sampled_from([v, np.asarray(v, dtype=np.float32), np.asarray(v, dtype=np.float64)])
    )


def invalid_actions(mode: str, k: int) -> st.SearchStrategy:
    junk = st.sampled_from([None, "", "1", {}, [], object(), [[0], [0, 0]], 1j])
    if mode == "delta":
        off = st.integers(-(2**40), 2**40).filter(lambda x: not 0 <= x <= 2)
        one_off = st.tuples(st.lists(st.integers(0, 2), min_size=k, max_size=k), st.integers(0, k - 1), off).map(
            lambda t: t[0][: t[1]] + [t[2]] + t[0][t[1] + 1 :]
        )
        wrong_length = st.integers(0, 3 * k).filter(lambda n: n != k).flatmap(
            lambda n: st.lists(st.integers(0, 2), min_size=n, max_size=n)
        )
        floats = st.lists(st.floats(0, 2), min_size=k, max_size=k).map(lambda v: np.asarray(v, dtype=np.float64))
        return st.one_of(as_given(one_off, k), as_given(wrong_length, k), floats, junk)
    if mode == "single":
        off = st.integers(-(2**70), 2**70).filter(lambda x: not 0 <= x <= 2 * k)
        arrays = st.lists(st.integers(0, 2), min_size=2, max_size=4).map(np.asarray)
        return st.one_of(off, st.floats(allow_nan=True), arrays, junk)
    unit = st.one_of(st.floats(-1.0, 1.0, width=32), st.sampled_from(EDGE_FLOATS))
    one_off = st.tuples(st.lists(unit, min_size=k, max_size=k), st.integers(0, k - 1), st.sampled_from(BAD_FLOATS)).map(
        lambda t: t[0][: t[1]] + [t[2]] + t[0][t[1] + 1 :]
    )
    lengths = st.integers(0, 3 * k).filter(lambda n: n != k)
    wrong_length = lengths.flatmap(lambda n: st.lists(unit, min_size=n, max_size=n))
    return st.one_of(as_given(one_off, k), as_given(wrong_length, k), junk)


def episodes(mode: str, k: int, min_steps: int, max_steps: int) -> st.SearchStrategy:
    """A seed and a sequence of operations: between ``min_steps`` and ``max_steps`` valid
    steps, with rejected actions and resets slipped in anywhere between them."""
    steps = st.lists(valid_actions(mode, k).map(lambda a: ("step", a)), min_size=min_steps, max_size=max_steps)
    other = st.one_of(invalid_actions(mode, k).map(lambda a: ("bad", a)), st.just(("reset", None)))
    extras = st.lists(st.tuples(st.integers(0, max_steps), other), max_size=max_steps // 2)

    def merge(parts: tuple[list, list]) -> list:
        ops = list(parts[0])
        for position, op in parts[1]:
            ops.insert(min(position, len(ops)), op)
        return ops

    seed = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 2**63 - 1]))
    return st.tuples(seed, st.tuples(steps, extras).map(merge))


# -- the property ------------------------------------------------------------------


def check_observation(env: gym.Env, obs: Any) -> None:
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32
    assert obs in env.observation_space and np.isfinite(obs).all()


def drive(env: gym.Env, seed: int, ops: list[tuple[str, Any]]) -> int:
    """Play ``ops`` on ``env`` and check every outcome; return the number of trials run."""
    obs, info = env.reset(seed=seed)
    check_observation(env, obs)
    trials = 0
    for kind, action in ops:
        if kind == "reset":
            obs, info = env.reset()
            check_observation(env, obs)
            continue
        if kind == "bad":
            before = (env.unwrapped._trials, env.unwrapped._observation().tobytes())
            with pytest.raises(ValueError, match="action space"):
                env.step(action)
            assert (env.unwrapped._trials, env.unwrapped._observation().tobytes()) == before
            continue
        obs, reward, terminated, truncated, info = env.step(action)
        trials += 1
        check_observation(env, obs)
        assert type(reward) is float and math.isfinite(reward)
        assert truncated is False and isinstance(terminated, bool)
        assert 0.0 <= info["dev_score"] <= 1.0 and HyperParams(**info["config"])
        json.dumps(info)  # plain data: no numpy scalars in info
        if terminated:
            assert "best_test_score" in info and math.isfinite(info["best_test_score"])
            obs, info = env.reset()
            check_observation(env, obs)
    return trials


def fuzz(envs: list[gym.Env], mode: str, *, examples: int, min_steps: int, max_steps: int) -> int:
    """Run hypothesis over ``envs`` (all of one action mode); return the trials it ran
    (at least ``examples * min_steps``)."""
    k = envs[0].action_space.shape[0] if mode != "single" else (envs[0].action_space.n - 1) // 2
    trials: list[int] = []

    @settings(max_examples=examples, **FUZZ)
    @given(st.sampled_from(range(len(envs))), episodes(mode, k, min_steps, max_steps))
    def run(which: int, episode: tuple[int, list]) -> None:
        trials.append(drive(envs[which], *episode))

    run()
    return sum(trials)


# -- recorded backend: thousands of steps ------------------------------------------


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return recorded_table(tmp_path_factory.mktemp("table") / "head-v1.json.gz")


def recorded_envs(table, mode: str) -> list[gym.Env]:
    """Every reward, both starts, extreme budgets, seeds and penalties, on a table whose
    top learning rate diverges (in the first epoch at one batch size)."""
    backend = RecordedBackend(path=table)
    variants = [
        dict(reward="score"),
        dict(reward="improvement", start="random", budget=1),
        dict(reward="regret", budget=7, cost_penalty=MAX_PENALTY, diverged_penalty=MAX_PENALTY),
        dict(reward="regret", start="random", budget=50, trial_seeds=2**32),
        dict(reward="improvement", trial_seeds=1, cost_penalty=1e-12),
        dict(reward="regret", observation="adaptive", start="random", budget=12),
    ]
    envs = [gym.make("LegalHPO-v0", task="t", backend=backend, action_mode=mode, **v) for v in variants]
    if "head" in available_tables():  # the packaged table, when this checkout has one
        envs += [gym.make("LegalHPO-v0", action_mode=mode, reward=r) for r in ("score", "regret")]
    return envs


@pytest.mark.parametrize("mode", ACTION_MODES)
def test_fuzz_recorded(table, mode):
    trials = fuzz(recorded_envs(table, mode), mode, examples=100, min_steps=15, max_steps=40)
    report_figure(f"fuzz.recorded.{mode}", trials)
    print(f"\n[fuzz] recorded, {mode}: {trials} trials")
    assert trials >= 1500


# -- live backends -----------------------------------------------------------------


@pytest.fixture(scope="module")
def live_task(tmp_path_factory) -> str:
    return f"custom:{write_classification_csv(tmp_path_factory.mktemp('fuzz') / 'tiny.csv')}"


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("mode", ACTION_MODES)
def test_fuzz_head(live_task, tiny_model, mode):
    common = dict(task=live_task, backend="head", model=tiny_model, max_train=12, max_length=32, device="cpu",
                  action_mode=mode)
    envs = [
        gym.make("LegalHPO-v0", **common, budget=4, reward="improvement", start="random"),
        gym.make("LegalHPO-v0", **common, budget=2, cost_penalty=MAX_PENALTY, trial_seeds=2**32),
    ]
    trials = fuzz(envs, mode, examples=15, min_steps=4, max_steps=8)
    report_figure(f"fuzz.head.{mode}", trials)
    print(f"\n[fuzz] head, {mode}: {trials} trials")
    assert trials >= 60


@pytest.mark.usefixtures("torch_one_thread")
def test_fuzz_finetune(live_task, tiny_model):
    total = 0
    for mode in ACTION_MODES:
        env = gym.make("LegalHPO-v0", task=live_task, backend="finetune", model=tiny_model, max_train=6,
                       max_length=16, device="cpu", action_mode=mode, budget=3, start="random")
        total += fuzz([env], mode, examples=4, min_steps=3, max_steps=4)
    report_figure("fuzz.finetune", total)
    print(f"\n[fuzz] finetune, all modes: {total} trials")
    assert total >= 36
