"""LegalHPO-v0: contracts (checkers, determinism, pickling, vectorisation), behaviour, bad input.

Its rewards are tested in ``test_rewards.py``."""

from __future__ import annotations

import functools
import importlib
import math
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402
from agents.base import config_to_action  # noqa: E402
from legal_hpo_env.env import ACTION_MODES, LegalHPOEnv, observation_layout  # noqa: E402
from legal_hpo_env.rewards import REWARDS  # noqa: E402
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE, HyperParams  # noqa: E402
from legal_hpo_env.tasks import load_task  # noqa: E402
from support import write_classification_csv  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

K = len(SPACE)


# -- contracts ---------------------------------------------------------------------


LIVE_REWARDS = sorted(set(REWARDS) - {"regret"})  # regret needs a recorded optimum (tests/test_rewards.py)


@pytest.mark.parametrize("reward", LIVE_REWARDS)
@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_both_env_checkers_pass_without_warnings(env_kwargs, action_mode, reward):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("LegalHPO-v0", **env_kwargs, action_mode=action_mode, reward=reward)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []
    env.close()


def test_spaces_match_the_documented_layout(make):
    layout = observation_layout()
    assert len(layout) == K + 16 and layout[K : K + 5] == [
        "last_score", "best_score", "last_train_loss", "budget_used", "last_diverged",
    ]
    for mode, space in [
        ("delta", gym.spaces.MultiDiscrete([3] * K)),
        ("single", gym.spaces.Discrete(2 * K + 1)),
        ("direct", gym.spaces.Box(-1.0, 1.0, (K,), np.float32)),
    ]:
        env = make(action_mode=mode)
        assert env.action_space == space
        assert env.observation_space == gym.spaces.Box(0.0, 1.0, (K + 16,), np.float32)


def test_observation_hand_computed(make, tiny_task):
    env = make()
    obs, info = env.reset(seed=0)
    assert info == {"task": tiny_task, "config": DEFAULT_RECIPE.to_dict()}
    assert obs.dtype == np.float32 and obs in env.observation_space
    task = load_task(tiny_task)
    mean_chars = task.meta_features()["mean_chars"]
    majority = task.meta_features()["majority_share"]
    expected = SPACE.normalise(DEFAULT_RECIPE) + [0.0, 0.0, 0.0, 0.0, 0.0] + [
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,  # custom data: in no family
        math.log10(42) / 6,  # 42 training examples
        math.log2(3) / 7,  # 3 labels
        majority,  # share of the most frequent training label
        math.log10(mean_chars) / 5,
    ]
    assert obs.tolist() == pytest.approx(expected, abs=1e-6)
    obs, reward, terminated, truncated, info = env.step(np.ones(K, dtype=np.int64))  # keep the recipe
    assert obs[K] == pytest.approx(info["dev_score"]) and obs[K + 1] == pytest.approx(info["best_score"])
    loss = info["train_loss"]
    assert obs[K + 2] == pytest.approx(loss / (1 + loss)) and obs[K + 3] == pytest.approx(1 / 3)
    assert obs[K + 4] == 0.0 and not truncated and not terminated


def test_registration_and_gym_make(env_kwargs):
    env = gym.make("legal_hpo_env:LegalHPO-v0", **env_kwargs)
    assert env.spec.id == "LegalHPO-v0" and isinstance(env.unwrapped, LegalHPOEnv)
    obs, _ = env.reset(seed=0)
    assert env.step(env.action_space.sample())[0].shape == obs.shape
    env.close()
    ids = [i for i in gym.registry if "LegalHPO" in i]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.reload(legal_hpo_env)
    assert [i for i in gym.registry if "LegalHPO" in i] == ids == ["LegalHPO-v0"]
    assert [str(w.message) for w in caught] == []


def test_import_is_cheap():
    code = (
        "import sys, legal_hpo_env, legal_hpo_env.env; "
        "heavy = [m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "import gymnasium as gym; assert 'LegalHPO-v0' in gym.registry"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_module_prefix_imports_the_package_in_a_fresh_process(env_kwargs):
    code = (
        "import sys, gymnasium as gym; assert 'legal_hpo_env' not in sys.modules; "
        f"env = gym.make('legal_hpo_env:LegalHPO-v0', **{env_kwargs!r}); "
        "assert env.spec.id == 'LegalHPO-v0'; env.reset(seed=0); print(env.step(env.action_space.sample())[2])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def rollout(env: LegalHPOEnv, actions, seed: int):
    obs, info = env.reset(seed=seed)
    trajectory = [(obs.tolist(), None, info["config"], None)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trajectory.append((obs.tolist(), reward, info["config"], info["trial_seed"]))
    return trajectory, info


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_same_seed_same_trajectory(make, action_mode):
    space_env = make(action_mode=action_mode)
    space_env.action_space.seed(0)
    actions = [space_env.action_space.sample() for _ in range(4)]
    first = make(action_mode=action_mode, budget=4, start="random", trial_seeds=3)
    second = make(action_mode=action_mode, budget=4, start="random", trial_seeds=3)
    a, info_a = rollout(first, actions, seed=11)
    b, info_b = rollout(second, actions, seed=11)
    assert a == b
    assert info_a["best_test_score"] == info_b["best_test_score"]
    # the seed matters: another seed starts elsewhere or draws other trial seeds
    c, _ = rollout(make(action_mode=action_mode, budget=4, start="random", trial_seeds=3), actions, seed=12)
    assert c != a


def test_env_pickles(make):
    env = make(action_mode="delta", budget=3)
    env.reset(seed=0)
    env.step(np.full(K, 2))
    copy = pickle.loads(pickle.dumps(env))
    action = np.array([0, 2, 1, 1, 0, 2, 1])
    obs_copy, reward_copy, *_, info_copy = copy.step(action)
    obs, reward, *_, info = env.step(action)
    assert obs_copy.tolist() == obs.tolist() and reward_copy == reward
    assert info_copy["config"] == info["config"] and info_copy["trial_seed"] == info["trial_seed"]
    fresh = pickle.loads(pickle.dumps(make()))  # before any reset, too
    fresh.reset(seed=1)
    assert fresh.step(fresh.action_space.sample())[0] in fresh.observation_space


def test_env_on_a_table_backend_pickles(tiny_task, tiny_model):
    from legal_hpo_env.backends.table import TableBackend
    from legal_hpo_env.objective import Objective

    objective = Objective(tiny_task, "head", model=tiny_model, device="cpu")
    results = [objective({"learning_rate": lr, "epochs": 1}, seed=s) for lr in (1e-4, 1e-3) for s in (0, 1)]
    env = LegalHPOEnv(task=tiny_task, backend=TableBackend(results), budget=2, action_mode="single", trial_seeds=2)
    assert env.hp_space.size() == 2 and env.action_space == gym.spaces.Discrete(2 * K + 1)
    copy = pickle.loads(pickle.dumps(env))
    copy.reset(seed=0)
    _, reward, _, _, info = copy.step(2)  # raise the learning rate: 1e-4 -> 1e-3
    assert info["config"]["learning_rate"] == 1e-3 and info["from_store"] is False
    recorded = [r for r in results if r.config["learning_rate"] == 1e-3 and r.seed == info["trial_seed"]]
    assert reward == recorded[0].dev_score


def test_gymnasium_sync_vector_env(env_kwargs):
    envs = gym.make_vec("LegalHPO-v0", num_envs=2, vectorization_mode="sync", **env_kwargs)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, K + 16)
    envs.action_space.seed(0)
    for _ in range(4):  # past the budget of 3: autoreset
        obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    assert obs.shape == (2, K + 16) and rewards.shape == (2,)
    envs.close()


def test_sb3_subproc_vec_env(env_kwargs, monkeypatch):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the two workers share the machine
    env_fn = functools.partial(gym.make, "legal_hpo_env:LegalHPO-v0", **env_kwargs)
    vec = SubprocVecEnv([env_fn, env_fn], start_method="spawn")
    try:
        vec.seed(0)
        obs = vec.reset()
        assert obs.shape == (2, K + 16)
        for _ in range(3):
            obs, rewards, dones, infos = vec.step(np.array([vec.action_space.sample() for _ in range(2)]))
        assert dones.tolist() == [True, True]  # the budget of 3 is used
        assert all(0.0 <= info["best_test_score"] <= 1.0 for info in infos)
        assert obs.shape == (2, K + 16)  # already reset
    finally:
        vec.close()


# -- behaviour ---------------------------------------------------------------------


def test_budget_ends_the_episode(make, tiny_task, tiny_model):
    env = make(budget=3)
    env.reset(seed=0)
    actions = [np.full(K, 2), np.ones(K, dtype=int), np.zeros(K, dtype=int)]
    infos = []
    for i, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
        assert terminated == (i == 2) and truncated is False
        assert info["trials"] == i + 1 and obs[K + 3] == pytest.approx((i + 1) / 3)
        assert ("best_test_score" in info) == (i == 2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.ones(K, dtype=int))
    # best_test_score is the test score of the configuration with the best dev score
    best = max(infos, key=lambda info: info["dev_score"])
    assert infos[-1]["best_config"] == best["config"] and infos[-1]["best_score"] == best["dev_score"]
    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.objective import Objective

    replay = Objective(tiny_task, "head", model=tiny_model, device="cpu", fidelity=Fidelity(max_length=32))
    assert info["best_test_score"] == replay(HyperParams(**best["config"]), seed=0).test_score
    env.reset(seed=0)  # a new episode starts afresh
    assert env.step(np.ones(K, dtype=int))[3] is False


LOW = dict(learning_rate=1e-5, batch_size=4, weight_decay=0.0, warmup_ratio=0.0, epochs=1, dropout=0.0,
           class_weighting="none")


def test_delta_moves_stop_at_the_grid_bounds(make):
    env = make(budget=4)
    env.reset(seed=0)
    configs = [env.step(np.zeros(K, dtype=int))[4]["config"] for _ in range(4)]
    # recipe (3e-5, 8, 0, 0.1, 3, 0.1, none) one grid step down in every dimension
    assert configs[0] == dict(learning_rate=2e-5, batch_size=4, weight_decay=0.0, warmup_ratio=0.06, epochs=2,
                              dropout=0.0, class_weighting="none")
    assert configs[1] == configs[2] == configs[3] == LOW
    env = make(budget=13)
    env.reset(seed=0)
    configs = [env.step(np.full(K, 2))[4]["config"] for _ in range(13)]
    assert configs[0] == dict(learning_rate=5e-5, batch_size=16, weight_decay=0.01, warmup_ratio=0.2, epochs=5,
                              dropout=0.2, class_weighting="balanced")
    top = dict(learning_rate=1.0, batch_size=64, weight_decay=0.1, warmup_ratio=0.2, epochs=8, dropout=0.3,
               class_weighting="balanced")
    # every dimension but the learning rate is at its top after 3 steps; the learning rate
    # (index 2 of 15) after 12
    assert configs[2] == {**top, "learning_rate": 2e-4}
    lrs = [5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 1.0]
    assert [c["learning_rate"] for c in configs] == lrs
    assert configs[11] == configs[12] == top


def test_single_and_direct_moves(make):
    env = make(action_mode="single", budget=5)
    env.reset(seed=0)
    configs = [env.step(a)[4]["config"] for a in (0, 1, 14, 13, 10)]
    recipe = DEFAULT_RECIPE.to_dict()
    assert configs[0] == recipe  # 0 keeps all
    assert configs[1] == {**recipe, "learning_rate": 2e-5}  # 1 lowers hyperparameter 0
    assert configs[2] == {**configs[1], "class_weighting": "balanced"}  # 14 raises hyperparameter 6
    assert configs[3] == configs[1]  # 13 lowers it again
    assert configs[4] == {**configs[1], "epochs": 5}  # 10 raises hyperparameter 4 (epochs)
    env = make(action_mode="direct", budget=2)
    env.reset(seed=0)
    assert env.step(np.full(K, -1.0, dtype=np.float32))[4]["config"] == LOW
    assert env.step(np.full(K, 1.0, dtype=np.float32))[4]["config"]["batch_size"] == 64


def test_an_unsupported_render_mode_is_warned_about_and_ignored(make):
    # as most envs do: SB3's make_vec_env asks every env for render_mode="rgb_array"
    with pytest.warns(UserWarning, match="renders text only"):
        env = make(render_mode="rgb_array")
    assert env.render_mode is None and env.render() is None


def test_render_ansi(make):
    env = make(render_mode="ansi")
    env.reset(seed=0)
    assert "trial 0/3" in env.render() and "none yet" in env.render()
    env.step(np.ones(K, dtype=int))
    text = env.render()
    assert "trial 1/3" in text and "none yet" not in text and "best none" not in text
    assert make().render() is None


def test_multi_task_and_reset_option(make, tiny_task, tmp_path):
    other = f"custom:{write_classification_csv(tmp_path / 'other.csv', n=90, seed=1)}"
    env = make(task=[tiny_task, other], budget=2)
    obs, info = env.reset(seed=0, options={"task": other})
    assert info["task"] == other
    assert obs[K + 12] == pytest.approx(math.log10(66) / 6)  # 90 examples: 22 per class in train
    _, _, _, _, info = env.step(np.ones(K, dtype=int))
    assert info["task"] == other
    obs, info = env.reset(seed=0, options={"task": tiny_task})
    assert info["task"] == tiny_task and obs[K + 12] == pytest.approx(math.log10(42) / 6)
    chosen = {env.reset(seed=s)[1]["task"] for s in range(12)}
    assert chosen == {tiny_task, other}


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "fragments"),
    [
        ({"action_mode": "continuous"}, ValueError, ["action_mode", "'delta'", "'single'", "'direct'"]),
        ({"reward": "regret"}, ValueError, ["reward", "'improvement'", "'score'"]),
        ({"backend": "lora"}, ValueError, ["'lora'", "finetune", "head"]),
        ({"task": "unfair-tos"}, ValueError, ["'unfair-tos'", "unfair_tos", "scotus", "custom:"]),
        ({"task": []}, ValueError, ["task"]),
        ({"budget": 0}, ValueError, ["budget=0", ">= 1"]),
        ({"budget": True}, ValueError, ["budget"]),
        ({"budget": 2.5}, ValueError, ["budget"]),
        ({"start": "middle"}, ValueError, ["start", "'default'", "'random'"]),
        ({"cost_penalty": -1.0}, ValueError, ["cost_penalty"]),
        ({"diverged_penalty": math.nan}, ValueError, ["diverged_penalty"]),
        ({"trial_seeds": 0}, ValueError, ["trial_seeds"]),
        ({"render_mode": 1}, ValueError, ["render_mode", "'ansi'"]),
        ({"max_train": 0}, ValueError, ["max_train"]),
    ],
)
def test_bad_arguments(make, changes, error, fragments):
    with pytest.raises(error) as info:
        make(**changes)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_step_before_reset(make):
    with pytest.raises(RuntimeError, match="reset"):
        make().step(np.ones(K, dtype=int))


@pytest.mark.parametrize(
    ("action_mode", "action"),
    [
        ("delta", np.ones(K - 1, dtype=int)),
        ("delta", np.array([1, 1, 3, 1, 1, 1, 1])),
        ("delta", np.array([1, 1, -1, 1, 1, 1, 1])),
        ("delta", 1),
        ("single", 2 * K + 1),
        ("single", -1),
        ("single", 1.5),
        ("single", np.array([1, 2])),
        ("direct", np.array([0.0, 0.0, math.nan, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)),
        ("direct", np.zeros(K + 1, dtype=np.float32)),
        ("direct", np.full(K, 1.5, dtype=np.float32)),
    ],
)
def test_action_outside_the_space(make, action_mode, action):
    env = make(action_mode=action_mode)
    env.reset(seed=0)
    with pytest.raises(ValueError) as info:
        env.step(action)
    message = str(info.value)
    assert "action space" in message and f"action_mode={action_mode!r}" in message
    assert str(env.action_space) in message
    # plain Python actions inside the space are accepted
    env.step([1] * K if action_mode == "delta" else 0 if action_mode == "single" else [0.0] * K)


def test_bad_reset_options(make):
    env = make()
    with pytest.raises(ValueError, match="'unknown'") as info:
        env.reset(options={"task": "unknown"})
    assert "custom:" in str(info.value)  # names the env's tasks
    with pytest.raises(ValueError, match="'budget'"):
        env.reset(options={"budget": 3})


def test_close_releases_the_store_connection(make, tmp_path):
    """Closed envs hold no file descriptors of their store, however many were opened."""
    import os

    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    store = str(tmp_path / "trials.db")
    env = make(store=store)
    env.reset(seed=0)
    env.step(np.ones(K, dtype=np.int64))
    env.close()
    before = fds()
    kept = []
    for _ in range(10):
        env = make(store=store)
        env.reset(seed=0)
        env.step(np.ones(K, dtype=np.int64))  # a stored trial: the store is read
        env.close()
        kept.append(env)  # still referenced, as a user's list of envs would keep them
    assert fds() <= before


def test_named_task_sets_work_through_gym_make():
    env = gym.make("LegalHPO-v0", task="family:case_law")
    assert env.unwrapped.tasks == ["overruling"] and env.reset(seed=0)[1]["task"] == "overruling"
    env = gym.make("LegalHPO-v0", task=["family:judgment", "unfair_tos"])
    assert env.unwrapped.tasks == ["scotus", "unfair_tos"]
    assert len(gym.make("LegalHPO-v0", task="suite:train").unwrapped.tasks) == 24
    with pytest.raises(ValueError, match="cuad_"):  # version 1 of the head table holds the founding tasks only
        gym.make("LegalHPO-v0", task="suite:train", table="head-v1")


def test_one_configuration_has_one_observation_on_every_backend(make, tmp_path):
    """Normalised against the full space: batch 16 is 0.5 and epochs 3 is 0.5 whether the
    grid moved on is the full one (live) or a recorded sub-grid, so one policy means one thing."""
    from legal_hpo_env.backends.recorded import RecordedBackend
    from support import recorded_table

    config = HyperParams(learning_rate=1e-4, batch_size=16, epochs=2, class_weighting="balanced")
    action = config_to_action(config)
    recorded = LegalHPOEnv(task="t", backend=RecordedBackend(path=recorded_table(tmp_path / "t.json.gz")),
                           action_mode="direct", budget=2)
    envs = {"live head": make(action_mode="direct"),
            "packaged head table": LegalHPOEnv(action_mode="direct", table="head-v1"),
            "a recorded sub-grid": recorded}
    observed = {}
    for name, env in envs.items():
        env.reset(seed=0)
        obs, *_, info = env.step(action)
        assert info["config"] == config.to_dict(), name  # on every grid, the action is this configuration
        observed[name] = obs[:K].tolist()
    assert len({tuple(v) for v in observed.values()}) == 1, observed
    assert observed["live head"] == pytest.approx(SPACE.normalise(config))
    assert SPACE.normalise(config)[SPACE.names.index("batch_size")] == pytest.approx(0.5)


def test_numpy_scalars_are_accepted_where_numbers_are():
    env = LegalHPOEnv(cost_penalty=np.float32(0.1), diverged_penalty=np.float64(0.5), budget=np.int64(3),
                      trial_seeds=np.int32(2))
    assert (env.cost_penalty, env.budget, env.trial_seeds) == (pytest.approx(0.1), 3, 2)
    assert type(env.cost_penalty) is float and type(env.budget) is int
