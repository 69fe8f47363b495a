"""Agents: shared recording, baselines, REINFORCE and PPO, on a problem with a known optimum.

The problem is built from the env's own machinery: a table of :class:`TrialResult` over
learning rate x batch size x class weighting (the other hyperparameters at the LexGLUE
recipe), replayed by a :class:`TableBackend`. Its dev score is a smooth bump in (log)
learning rate and batch size, peaked at lr 5e-4, batch 32, balanced weighting; learning
rates of 3e-3 and above diverge, as fine-tuning transformers does. Each configuration has
two seeds that differ by +-0.01, so the env's trial seed matters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import SEARCHERS, make_searcher
from agents.base import TuningRun, config_to_action, indices_to_action, play_episode
from agents.baselines import DefaultRecipe, RandomSearch, TPESearch
from agents.reinforce import REINFORCE, Args, PolicySearcher, returns_to_go, time_step_baseline
from legal_hpo_env.backends.base import TrialResult
from legal_hpo_env.backends.table import TableBackend
from legal_hpo_env.env import LegalHPOEnv
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE

TASK = "synthetic"
META = {TASK: {"family": 0.0, "train_size": 1000.0, "num_labels": 2.0, "mean_chars": 100.0}}
LRS = SPACE["learning_rate"].grid  # 15 values, 1e-5 .. 1
BATCHES = SPACE["batch_size"].grid  # 5 values, 4 .. 64
WEIGHTINGS = SPACE["class_weighting"].grid  # none, balanced
PEAK = (4, 3, 1)  # lr 1e-4, batch 32, balanced
DIVERGES_FROM = 9  # lr index: 3e-3 and above diverge
SEED_NOISE = 0.01


def true_score(i: int, j: int, c: int) -> float:
    """Mean dev score at grid indices (lr i, batch j, weighting c); its maximum is 0.95."""
    bump = math.exp(-0.5 * ((i - PEAK[0]) / 2.0) ** 2 - 0.5 * ((j - PEAK[1]) / 1.5) ** 2)
    return 0.2 + 0.7 * bump + 0.05 * (c == PEAK[2])


def synthetic_results(seeds: int = 2) -> list[TrialResult]:
    results = []
    for i, lr in enumerate(LRS):
        for j, batch in enumerate(BATCHES):
            for c, weighting in enumerate(WEIGHTINGS):
                config = DEFAULT_RECIPE.replace(learning_rate=lr, batch_size=batch, class_weighting=weighting)
                diverged = i >= DIVERGES_FROM
                for seed in range(seeds):
                    dev = 0.0 if diverged else true_score(i, j, c) + SEED_NOISE * (2 * seed - 1)
                    results.append(
                        TrialResult(
                            task=TASK, backend="table", model="synthetic", config=config.to_dict(), fidelity={},
                            seed=seed, metric="macro_f1", dev_curve=[dev], train_loss=[math.nan if diverged else 0.4],
                            selected_epoch=1, dev_score=dev, test_score=0.0 if diverged else dev - 0.03,
                            dev_accuracy=dev, dev_macro_f1=dev, test_accuracy=dev, test_macro_f1=dev,
                            diverged=diverged, seconds=2.0, sizes={"train": 1000}, data_hash="", code_version="test",
                        )
                    )
    return results


BEST_MEAN = true_score(*PEAK)


@pytest.fixture(scope="module")
def table() -> TableBackend:
    return TableBackend(synthetic_results(), meta=META)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These networks are tiny: on a busy 2-core machine one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_env(table: TableBackend, budget: int = 8, **kwargs) -> LegalHPOEnv:
    kwargs.setdefault("action_mode", "direct")
    return LegalHPOEnv(task=TASK, backend=table, budget=budget, trial_seeds=2, **kwargs)


def mean_best(searcher, env: gym.Env, seeds) -> float:
    return float(np.mean([searcher.run(env, seed=s).best_score for s in seeds]))


# -- package, registry, shared helpers ---------------------------------------------------


def test_import_agents_is_cheap():
    code = (
        "import sys, agents; heavy = [m for m in ('torch', 'optuna', 'stable_baselines3') if m in sys.modules]; "
        "assert not heavy, heavy; agents.make_searcher('random'); "
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_makes_every_searcher_and_names_the_valid_ones():
    assert sorted(SEARCHERS) == ["asha", "default", "random", "tpe"]
    for name in SEARCHERS:
        assert make_searcher(name).name == name
    with pytest.raises(ValueError, match="valid names are"):
        make_searcher("grid")


def test_config_to_action_round_trips_every_grid_point(table):
    # decode_unit works per dimension: every index of every dimension of the full space...
    for dim_index, dim in enumerate(SPACE.dimensions):
        for i in range(len(dim.grid)):
            indices = list(SPACE.to_indices(DEFAULT_RECIPE))
            indices[dim_index] = i
            config = SPACE.from_indices(indices)
            action = config_to_action(config)
            assert action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
            assert SPACE.decode_unit(action) == config
    # ...and every point of a recorded sub-grid: the env decodes on the full space, then
    # snaps to the sub-grid, so the action of a point is the same on every backend.
    env = make_env(table)
    space = env.hp_space
    assert space.size() == len(LRS) * len(BATCHES) * len(WEIGHTINGS)
    for config in space.grid_points():
        action = config_to_action(config)
        assert SPACE.decode_unit(action) == config
        env.reset(seed=0)
        assert env.step(action)[4]["config"] == config.to_dict()
    assert config_to_action(SPACE.from_indices([0] * len(SPACE))).tolist() == [-1.0] * len(SPACE)
    with pytest.raises(ValueError, match="off its grid"):
        indices_to_action(space, [99] * len(space))


def test_play_episode_records_what_the_env_reports(table):
    env = make_env(table, budget=6)
    lr_indices = (2, PEAK[0], 10, PEAK[0], 4, 9)
    peak = DEFAULT_RECIPE.replace(batch_size=32, class_weighting="balanced")
    configs = [peak.replace(learning_rate=LRS[i]) for i in lr_indices]
    actions = [config_to_action(c) for c in configs]
    seen = []
    run = play_episode(env, lambda obs: actions[len(seen)], seed=3, method="scripted", on_result=seen.append)
    assert run.method == "scripted" and run.task == TASK and run.seed == 3 and run.trials == 6
    assert [c["learning_rate"] for c in run.configs] == [LRS[i] for i in lr_indices]
    assert run.dev_scores[2] == 0.0 and run.dev_scores[5] == 0.0  # lr 1e-2 and 3e-3 diverged
    assert run.dev_scores == [info["dev_score"] for info in seen]
    assert run.best_curve == list(np.maximum.accumulate(run.dev_scores))
    assert run.best_score == max(run.dev_scores)
    assert abs(run.best_score - BEST_MEAN) == pytest.approx(SEED_NOISE)  # the peak, with one seed's noise
    assert run.best_config["learning_rate"] == LRS[PEAK[0]] and run.best_config["batch_size"] == 32
    assert run.best_test_score == pytest.approx(run.best_score - 0.03)
    assert run.trial_seconds == 12.0
    assert json.loads(json.dumps(run.to_dict()))["configs"] == run.configs


# -- baselines ---------------------------------------------------------------------------


def test_random_search_samples_grid_points_with_exactly_budget_trials(table):
    env = gym.make("LegalHPO-v0", task=TASK, backend=table, budget=12, action_mode="direct", trial_seeds=2)
    grid = {tuple(c.to_dict().values()) for c in env.unwrapped.hp_space.grid_points()}
    runs = [RandomSearch().run(env, seed=s) for s in range(5)]
    for run in runs:
        assert isinstance(run, TuningRun) and run.method == "random"
        assert len(run.configs) == len(run.dev_scores) == len(run.best_curve) == 12
        assert all(tuple(c.values()) in grid for c in run.configs)
        assert run.best_curve == sorted(run.best_curve)
    # Uniform draws: across runs they spread over the learning-rate grid.
    assert len({c["learning_rate"] for run in runs for c in run.configs}) >= 8
    again = RandomSearch().run(env, seed=0)
    assert again.configs == runs[0].configs and again.dev_scores == runs[0].dev_scores
    assert runs[1].configs != runs[0].configs


@pytest.mark.parametrize("searcher", [RandomSearch(), TPESearch()])
def test_whole_config_searchers_need_direct_actions(table, searcher):
    with pytest.raises(ValueError, match="action_mode='direct'"):
        searcher.run(make_env(table, action_mode="delta"), seed=0)


def test_default_recipe_evaluates_the_recipe_every_trial(table):
    recipe = DEFAULT_RECIPE.to_dict()
    for mode in ("direct", "delta", "single"):
        run = DefaultRecipe().run(make_env(table, budget=5, action_mode=mode), seed=1)
        assert run.configs == [recipe] * 5, mode
        assert run.best_score == pytest.approx(true_score(2, 1, 0) + SEED_NOISE)  # the better of its two seeds
    with pytest.raises(ValueError, match="start='default'"):
        DefaultRecipe().run(make_env(table, action_mode="delta", start="random"), seed=0)


@pytest.mark.parametrize(("ordered", "budget"), [(False, 20), (True, 15)])
def test_tpe_is_seeded_and_beats_random_search(table, ordered, budget):
    """Over 20 seeds TPE's mean best score beats random search's.

    (Over 60 seeds, in blocks of 20: categorical TPE at budget 20 scored 0.905-0.920 and
    random 0.854-0.873; ordered TPE at budget 15 scored 0.899-0.910 and random 0.792-0.851.)
    """
    env = make_env(table, budget=budget)
    tpe = TPESearch(n_startup_trials=3, ordered=ordered)
    first, again = tpe.run(env, seed=0), tpe.run(env, seed=0)
    assert first.method == "tpe" and len(first.configs) == budget
    assert first.configs == again.configs and first.dev_scores == again.dev_scores
    assert tpe.run(env, seed=1).configs != first.configs
    grid = {tuple(c.to_dict().values()) for c in env.hp_space.grid_points()}
    assert all(tuple(c.values()) in grid for c in first.configs)
    seeds = range(20)
    tpe_mean, random_mean = mean_best(tpe, env, seeds), mean_best(RandomSearch(), env, seeds)
    assert tpe_mean > random_mean + 0.02, (tpe_mean, random_mean)


def test_tpe_rejects_a_bad_startup_count():
    with pytest.raises(ValueError, match="n_startup_trials"):
        TPESearch(n_startup_trials=-1)


# -- REINFORCE ---------------------------------------------------------------------------


def test_returns_to_go_and_time_step_baseline_by_hand():
    assert returns_to_go([1.0, 2.0, 3.0], gamma=1.0) == [6.0, 5.0, 3.0]
    assert returns_to_go([1.0, 2.0, 3.0], gamma=0.5) == [1.0 + 0.5 * 2.0 + 0.25 * 3.0, 2.0 + 0.5 * 3.0, 3.0]
    assert returns_to_go([1.0, 2.0], gamma=0.0) == [1.0, 2.0]
    # Step 2 is reached by one episode only: its baseline is that episode's return.
    assert time_step_baseline([[6.0, 5.0, 3.0], [2.0, 0.0]]) == [4.0, 2.5, 3.0]


def test_reinforce_learns_where_the_optimum_is(table):
    """Trained on the task, REINFORCE's policy finds better configurations than random search.

    In ``direct`` mode a trial's score depends on its own action only, so returns are not
    discounted across trials (gamma=0). The untrained policy, a wide Gaussian around the
    grid's centre, already avoids the diverging learning rates and so beats uniform random
    search a little; training moves its mean onto the peak's learning rate and shrinks it.
    (Over training seeds 0-7 the trained mean best score ranged 0.953-0.960, random's 0.764.)
    """
    env = make_env(table, budget=8, reward="score")
    agent = REINFORCE(env, seed=0, gamma=0.0, learning_rate=1e-2, episodes_per_update=4)
    eval_env = make_env(table, budget=8, reward="score")
    eval_seeds = range(100, 124)
    untrained = mean_best(PolicySearcher(agent, deterministic=False), eval_env, eval_seeds)
    agent.learn(total_timesteps=10_000)
    trained = mean_best(PolicySearcher(agent, deterministic=False), eval_env, eval_seeds)
    random = mean_best(RandomSearch(), eval_env, eval_seeds)
    assert agent.num_timesteps >= 10_000 and len(agent.history) == math.ceil(10_000 / 32)
    returns = [h["mean_return"] for h in agent.history]  # sum of an episode's 8 scores
    assert np.mean(returns[-10:]) > np.mean(returns[:10]) + 1.0
    assert trained > random + 0.08, (trained, random)
    assert trained > untrained + 0.04, (trained, untrained)
    # Why it wins: the policy's mean is the peak's learning rate, next to its batch size.
    obs, _ = eval_env.reset(seed=0)
    config = eval_env.hp_space.decode_unit(agent.predict(obs, deterministic=True)[0])
    assert LRS.index(config.learning_rate) == PEAK[0], config
    assert abs(BATCHES.index(config.batch_size) - PEAK[1]) <= 1, config
    assert agent.policy.log_std[0].exp() < 0.2  # sure of the learning rate


@pytest.mark.parametrize("mode", ["delta", "single", "direct"])
def test_reinforce_trains_and_plays_every_action_mode(table, mode):
    env = gym.make("LegalHPO-v0", task=TASK, backend=table, budget=5, action_mode=mode, trial_seeds=2)
    agent = REINFORCE(env, seed=1, episodes_per_update=4).learn(total_timesteps=40)
    assert agent.num_timesteps == 40 and len(agent.history) == 2
    obs, _ = env.reset(seed=0)
    for deterministic in (False, True):
        action, state = agent.predict(obs, deterministic=deterministic)
        assert state is None and env.action_space.contains(action)
    batch, _ = agent.predict(np.stack([obs, obs, obs]))
    assert len(batch) == 3 and all(env.action_space.contains(a) for a in batch)
    run = PolicySearcher(agent).run(env, seed=2)
    assert run.method == "reinforce" and len(run.configs) == 5


def test_reinforce_same_seed_same_parameters_and_actions(table):
    def train(seed: int) -> REINFORCE:
        return REINFORCE(make_env(table, budget=4), seed=seed, episodes_per_update=4).learn(total_timesteps=48)

    a, b, c = train(7), train(7), train(8)
    for (name, p), q in zip(a.policy.state_dict().items(), b.policy.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.policy.log_std, c.policy.log_std)
    obs, _ = make_env(table, budget=4).reset(seed=0)
    assert np.array_equal(a.predict(obs)[0], b.predict(obs)[0])
    assert [h["mean_return"] for h in a.history] == [h["mean_return"] for h in b.history]
    # Seeding does not touch torch's global RNG.
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("mode", ["delta", "direct"])
def test_reinforce_save_load_round_trip(table, tmp_path, mode):
    env = make_env(table, budget=4, action_mode=mode)
    agent = REINFORCE(env, seed=3, episodes_per_update=2, hidden=16).learn(total_timesteps=16)
    path = tmp_path / "agent.pt"
    agent.save(path)
    loaded = REINFORCE.load(path)
    assert loaded.args == agent.args and loaded.num_timesteps == agent.num_timesteps
    obs = np.stack([make_env(table, action_mode=mode).reset(seed=s)[0] for s in range(4)])
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])
    # The sampling RNG is saved too: stochastic predictions match draw for draw.
    assert np.array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    with pytest.raises(RuntimeError, match="no env"):
        loaded.learn(8)
    resumed = REINFORCE.load(path, env=env).learn(8)
    assert resumed.num_timesteps == 24
    with pytest.raises(ValueError, match="differ"):
        REINFORCE.load(path, env=make_env(table, action_mode="single"))


def test_reinforce_callback_can_stop_training(table):
    calls = []

    def callback(locals_: dict, agent: REINFORCE) -> bool:
        calls.append(locals_["stats"]["timesteps"])
        return False

    agent = REINFORCE(make_env(table, budget=4), episodes_per_update=2).learn(1_000, callback=callback)
    assert calls == [8.0] and agent.num_timesteps == 8


def test_reinforce_rejects_bad_arguments(table):
    env = make_env(table)
    with pytest.raises(TypeError, match="valid ones are"):
        REINFORCE(env, learning_rat=1e-3)
    with pytest.raises(ValueError, match="episodes_per_update"):
        REINFORCE(env, episodes_per_update=1)
    with pytest.raises(ValueError, match="gamma"):
        Args(gamma=1.5)
    with pytest.raises(TypeError, match="predict"):
        PolicySearcher(object())


# -- PPO (stable-baselines3) -------------------------------------------------------------


def test_ppo_learns_logs_best_scores_and_plays_an_episode(table, tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.logger import configure

    from agents.ppo import BestScoreCallback, make_ppo

    env_kwargs = {"task": TASK, "backend": table, "budget": 8, "action_mode": "delta", "trial_seeds": 2}
    model = make_ppo(env_kwargs, n_envs=2, seed=0, hidden=32, n_steps=20, n_epochs=2)
    assert model.n_steps == 24  # rounded up to whole episodes of 8 trials
    assert (model.n_steps * model.n_envs) % model.batch_size == 0
    assert model.policy.net_arch == {"pi": [32, 32], "vf": [32, 32]}
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = BestScoreCallback()
    model.learn(total_timesteps=96, callback=callback)
    model.logger.close()
    # 2 rollouts x 2 envs x 24 steps = 96 steps = 12 episodes of 8 trials.
    assert len(callback.episodes) == 12
    for episode in callback.episodes:
        assert 0.0 < episode["best_score"] <= BEST_MEAN + SEED_NOISE and episode["task"] == TASK
        assert episode["best_test_score"] == pytest.approx(episode["best_score"] - 0.03)
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert "tuning/best_score" in header and "tuning/best_test_score" in header
    logged = [float(row.split(",")[header.index("tuning/best_score")]) for row in lines[1:]]
    assert logged and all(0.0 < v <= BEST_MEAN + SEED_NOISE for v in logged)

    run = PolicySearcher(model).run(make_env(table, budget=8, action_mode="delta"), seed=0)
    assert run.method == "ppo" and len(run.configs) == 8 and run.best_score > 0.0


def test_recurrent_ppo_carries_its_memory_through_an_episode_and_round_trips(table, tmp_path):
    pytest.importorskip("sb3_contrib")
    from agents.ppo import load_ppo, make_ppo

    env_kwargs = {"task": TASK, "backend": table, "budget": 8, "action_mode": "direct", "trial_seeds": 2}
    model = make_ppo(env_kwargs, n_envs=2, seed=0, hidden=16, n_steps=16, n_epochs=1, recurrent=True)
    assert type(model).__name__ == "RecurrentPPO" and model.policy.lstm_actor.hidden_size == 16
    model.learn(total_timesteps=64)
    calls = []
    predict = model.predict

    def spy(obs, state=None, episode_start=None, deterministic=False):
        calls.append((state is None, bool(episode_start[0])))
        return predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)

    model.predict = spy
    env = make_env(table, budget=8, action_mode="direct")
    run = PolicySearcher(model).run(env, seed=0)
    assert run.trials == 8
    assert calls == [(True, True)] + [(False, False)] * 7  # fresh memory at the start, carried after
    calls.clear()
    PolicySearcher(model).run(env, seed=1)
    assert calls[0] == (True, True)  # and reset for the next episode
    model.predict = predict
    model.save(tmp_path / "rppo.zip")
    loaded = load_ppo(tmp_path / "rppo.zip", env_kwargs, n_envs=1)
    assert type(loaded).__name__ == "RecurrentPPO"
    assert PolicySearcher(loaded).run(env, seed=0).configs == run.configs


def test_make_ppo_rejects_unknown_vec_env(table):
    pytest.importorskip("stable_baselines3")
    from agents.ppo import make_ppo

    with pytest.raises(ValueError, match="vec_env"):
        make_ppo({"task": TASK, "backend": table}, vec_env="ray")


@pytest.mark.parametrize(("env_id", "vec_env"), [("LegalHPO-v0", "dummy"), ("legal_hpo_env:LegalHPO-v0", "subproc")])
def test_sb3_make_vec_env_takes_the_id(env_id, vec_env):
    """SB3 asks every env for render_mode="rgb_array": the env warns and renders nothing.

    Worker processes (SB3 starts them with forkserver) have not imported the package: the
    id qualified with its module registers it there, as Gymnasium intends for third-party envs.
    """
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    cls = DummyVecEnv if vec_env == "dummy" else SubprocVecEnv
    venv = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs={"task": "overruling", "budget": 3}, vec_env_cls=cls)
    try:
        obs = venv.reset()
        obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample()] * 2))
        assert obs.shape == (2, *venv.observation_space.shape) and np.isfinite(rewards).all()
    finally:
        venv.close()


def test_the_agents_package_is_this_projects_and_nothing_else_installs_one():
    """`agents` is a common name: the one imported is ours, and no other installed
    distribution ships a top-level `agents` that could shadow it (or be shadowed)."""
    from importlib import metadata

    import agents
    from support import REPO

    assert agents.DISTRIBUTION == "legal-hpo-env" and Path(agents.__file__).resolve().parent == REPO / "agents"
    others = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name == "legal-hpo-env":
            continue
        top = (dist.read_text("top_level.txt") or "").split()
        files = [str(f) for f in dist.files or []]
        if "agents" in top or any(f.startswith("agents/") for f in files):
            others.append(name)
    assert others == []


def test_a_shadowing_agents_package_is_one_clear_error(tmp_path):
    from support import REPO

    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("# somebody else's agents\n")
    code = "import sys; from legal_hpo_env.cli import main; sys.exit(main(['tune', '--task', 'overruling']))"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 2 and "another installed package named 'agents'" in out.stderr, out.stderr
