"""Ray: remote trials, RLlib's PPO and the Ray Tune ASHA baseline, on one local Ray instance
(2 CPUs, no dashboard) started once for the module.

Skipped as a whole when Ray is not installed: pip install 'legal-hpo-env[ray]'.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'legal-hpo-env[ray]'")

import legal_hpo_env  # noqa: E402,F401
from agents.base import config_to_action  # noqa: E402
from agents.ray_tune import RayTuneASHA, asha_rungs  # noqa: E402
from legal_hpo_env import distributed  # noqa: E402
from legal_hpo_env.backends.base import Fidelity  # noqa: E402
from legal_hpo_env.backends.recorded import write_table  # noqa: E402
from legal_hpo_env.cli import main as cli  # noqa: E402
from legal_hpo_env.distributed import INSTALL_HINT, RayExecutor, RayOptions, connect  # noqa: E402
from legal_hpo_env.env import LegalHPOEnv, observation_layout  # noqa: E402
from legal_hpo_env.objective import Objective  # noqa: E402
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE, HyperParams  # noqa: E402
from legal_hpo_env.store import TrialStore  # noqa: E402
from support import CURVE_TASK as TASK  # noqa: E402
from support import REPO, curve_runs, curve_table  # noqa: E402

pytestmark = pytest.mark.slow

FIDELITY = Fidelity(max_length=32)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance for the module; its workers cache features in a temporary folder."""
    before = os.environ.get("LEGAL_HPO_CACHE")
    os.environ["LEGAL_HPO_CACHE"] = str(tmp_path_factory.mktemp("worker-cache"))
    try:
        connect(num_cpus=2)
    finally:  # workers were started with it; the driver's tests set their own
        if before is None:
            del os.environ["LEGAL_HPO_CACHE"]
        else:
            os.environ["LEGAL_HPO_CACHE"] = before
    yield
    distributed.shutdown()


def remote_env(task: str, model: str, ray: dict | bool = True, **kwargs) -> LegalHPOEnv:
    kwargs = {"budget": 2, "action_mode": "direct", **kwargs}
    return LegalHPOEnv(task=task, backend="head", model=model, max_length=32, ray=ray, **kwargs)


def remote_objective(task: str, model: str, run_trial=None, **kwargs) -> Objective:
    return Objective(task, "head", model=model, fidelity=FIDELITY, executor=RayExecutor(run_trial=run_trial), **kwargs)


def action(env: LegalHPOEnv, **overrides) -> np.ndarray:
    return config_to_action(DEFAULT_RECIPE.replace(epochs=1, **overrides))


# -- remote trials -------------------------------------------------------------------


def test_ray_is_imported_only_when_used():
    import subprocess

    code = ("import sys, legal_hpo_env, legal_hpo_env.env, legal_hpo_env.cli, legal_hpo_env.distributed, "
            "agents.ray_tune, benchmarks.rllib_ppo; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_a_remote_trial_equals_the_local_trial(cluster, tiny_model, tiny_task, torch_one_thread, capsys):
    config = {"learning_rate": 1e-3, "epochs": 2, "batch_size": 16}
    remote = remote_objective(tiny_task, tiny_model)(config, seed=3)
    local = Objective(tiny_task, "head", model=tiny_model, fidelity=FIDELITY)(config, seed=3)
    assert remote.extra["pid"] != os.getpid()  # it did run on a worker
    assert remote.dev_curve == local.dev_curve and remote.test_score == local.test_score
    assert remote.train_loss == pytest.approx(local.train_loss, rel=1e-5)
    assert (remote.config, remote.seed, remote.data_hash) == (local.config, local.seed, local.data_hash)
    # the CLI: `evaluate --ray` runs it on the cluster, too
    assert cli(["evaluate", "--task", tiny_task, "--model", tiny_model, "--max-length", "32", "--ray",
                "--learning-rate", "0.001", "--epochs", "2", "--batch-size", "16", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["dev_curve"] == local.dev_curve


def test_remote_envs_and_local_objectives_share_one_store(cluster, tiny_model, tiny_task, tmp_path):
    store = tmp_path / "trials.sqlite"
    first = remote_env(tiny_task, tiny_model, store=str(store))
    second = remote_env(tiny_task, tiny_model, store=str(store))
    actions = [action(first, learning_rate=1e-4), action(first, learning_rate=1e-3)]
    for env, stored in ((first, False), (second, True)):
        env.reset(seed=0)
        for a in actions:
            info = env.step(a)[4]
            assert info["from_store"] is stored and "failed" not in info
    assert len(TrialStore(store)) == 2
    # a local objective finds the remote trials under the same keys
    local = Objective(tiny_task, "head", model=tiny_model, fidelity=FIDELITY, store=store)
    assert local({**DEFAULT_RECIPE.replace(epochs=1, learning_rate=1e-4).to_dict()}, seed=0).from_store
    # a batch sends each distinct trial once, and nothing already stored
    objective = remote_objective(tiny_task, tiny_model, store=store,
                                 run_trial=lambda spec, config, seed: pytest.fail("stored trials are not sent"))
    again = DEFAULT_RECIPE.replace(epochs=1, learning_rate=1e-3)
    assert all(r.from_store for r in objective.evaluate_many([again, again], [0, 0]))


def test_vectorised_envs_in_subprocesses_join_the_cluster_and_share_the_store(cluster, tiny_model, tiny_task, tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from agents.ppo import make_env_factory

    store = tmp_path / "trials.sqlite"
    kwargs = {"task": tiny_task, "backend": "head", "model": tiny_model, "max_length": 32, "budget": 2,
              "action_mode": "direct", "ray": {"address": connect()}, "store": str(store)}
    # the children join the cluster at the address. spawn, not SB3's default forkserver: a
    # forkserver started by an earlier test, before this cluster, lacks the environment Ray
    # sets up at ray.init (its token mode) for the processes started after it
    factory = functools.partial(make_env_factory("legal_hpo_env:LegalHPO-v0"), **kwargs)
    venv = SubprocVecEnv([factory] * 2, start_method="spawn")
    try:
        venv.reset()
        low, high = np.zeros(7, np.float32), np.full(7, -1.0, np.float32)
        infos = venv.step(np.stack([low, high]))[3]
        assert [i["from_store"] for i in infos] == [False, False]
        infos = venv.step(np.stack([high, low]))[3]  # each env asks for the trial the other one ran
        assert [i["from_store"] for i in infos] == [True, True]
    finally:
        venv.close()
    assert len(TrialStore(store)) == 2


def test_a_dead_worker_is_a_failed_trial_and_the_env_goes_on(cluster, tiny_model, tiny_task, tmp_path):
    def crash_on_large_lr(spec, config, seed):
        # runs on a worker: the worker process dies as an OOM kill or a segfault would end it
        if config["learning_rate"] >= 1e-3:
            os._exit(1)
        from legal_hpo_env.distributed import run_trial

        return run_trial(spec, config, seed)

    store = tmp_path / "trials.sqlite"
    env = remote_env(tiny_task, tiny_model, store=str(store), diverged_penalty=0.5)
    env.reset(seed=0)
    env.view.objective.executor.run_trial = crash_on_large_lr
    obs, reward, terminated, _, info = env.step(action(env, learning_rate=1e-3))
    assert "worker died" in info["failed"] and info["diverged"] and info["dev_score"] == 0.0
    assert reward == -0.5 and obs[observation_layout().index("last_diverged")] == 1.0
    assert not terminated and len(TrialStore(store)) == 0  # a failure is not a result
    obs, reward, terminated, _, info = env.step(action(env, learning_rate=1e-4))
    assert "failed" not in info and not info["diverged"] and terminated and len(TrialStore(store)) == 1


def test_a_trial_error_is_raised_as_it_would_be_locally(cluster, tiny_model, tiny_task):
    def broken(spec, config, seed):
        raise KeyError("a bug in the trial")

    objective = remote_objective(tiny_task, tiny_model, run_trial=broken)
    with pytest.raises(KeyError, match="a bug in the trial"):
        objective(DEFAULT_RECIPE, seed=0)


def test_resource_requests_no_node_can_satisfy_fail_clearly(cluster, tiny_model, tiny_task):
    for resources in ({"trial_gpus": 1}, {"trial_cpus": 64}):
        with pytest.raises(ValueError, match="no node of the Ray cluster can run a trial"):
            RayExecutor(**resources)
    with pytest.raises(ValueError, match="no node"):
        remote_env(tiny_task, tiny_model, ray={"trial_gpus": 1})
    with pytest.raises(ValueError, match="trial_cpus"):
        RayOptions(trial_cpus=-1)
    with pytest.raises(ValueError, match="unknown Ray option"):
        remote_env(tiny_task, tiny_model, ray={"gpus": 1})
    with pytest.raises(ValueError, match="trial_gpus > 0"):
        Objective(tiny_task, "head", model=tiny_model, device="cuda", executor=RayExecutor())
    with pytest.raises(ValueError, match="would ignore executor"):
        Objective("unfair_tos", "recorded", executor=RayExecutor())
    with pytest.raises(ValueError, match="would ignore executor"):
        LegalHPOEnv(task="unfair_tos", ray=True)
    assert cli(["evaluate", "--task", tiny_task, "--ray", "--trial-gpus", "4"]) == 2
    assert cli(["tune", "--backend", "recorded", "--ray"]) == 2


def test_an_unreachable_address_fails_fast_and_clearly(cluster, tiny_model, tiny_task, capsys):
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1 .*ray start --head"):
        connect("127.0.0.1:1", timeout=2)
    with pytest.raises(ValueError, match="not host:port"):
        connect("nowhere")
    assert cli(["evaluate", "--task", tiny_task, "--model", tiny_model, "--ray", "127.0.0.1:1"]) == 2
    assert "cannot reach a Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
    assert time.perf_counter() - start < 30


def test_without_ray_each_entry_point_says_how_to_install_it(tiny_model, tiny_task, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as when not installed
    with pytest.raises(ImportError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        connect()
    with pytest.raises(ImportError, match="pip install"):
        remote_env(tiny_task, tiny_model)
    with pytest.raises(ImportError, match="pip install"):
        RayTuneASHA().run(LegalHPOEnv(task=TASK, backend=curve_table(), budget=2, action_mode="direct"))
    assert cli(["evaluate", "--task", tiny_task, "--ray"]) == 2
    assert "pip install 'legal-hpo-env[ray]'" in capsys.readouterr().err


def test_a_ray_executor_pickles_without_its_ray_handle_and_keeps_its_cluster(cluster, tiny_model, tiny_task):
    import pickle

    objective = remote_objective(tiny_task, tiny_model)
    executor = objective.executor
    executor._submit(executor.spec(objective), DEFAULT_RECIPE.replace(epochs=1), 0)  # builds the handle
    copy = pickle.loads(pickle.dumps(objective))
    assert copy.executor._remote is None and copy.executor.spec(copy) == executor.spec(objective)
    assert copy.executor._joined == executor._joined == connect()  # a copy joins the same cluster


# -- RLlib and Ray Tune --------------------------------------------------------------

def test_rllib_ppo_trains_on_the_env_through_register_env(cluster, tmp_path):
    from benchmarks import rllib_ppo

    table = write_table(curve_runs(), {"note": "test"}, tmp_path / "head-v1.json.gz", version=1)
    out = tmp_path / "rllib.json"
    payload = rllib_ppo.main(["--table-path", str(table), "--task", TASK, "--budget", "4", "--iterations", "1",
                              "--episodes-per-iteration", "2", "--output", str(out)])
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert _global_registry.contains(ENV_CREATOR, "LegalHPO-v0")
    (row,) = payload["history"]
    assert row["env_steps"] >= 8 and math.isfinite(row["episode_return_mean"])
    assert json.loads(out.read_text())["history"] == payload["history"]



def test_ray_tune_asha_is_a_seeded_baseline_on_the_envs_grid_and_budget(cluster):
    backend = curve_table()
    env = gym.make("LegalHPO-v0", task=TASK, backend=backend, budget=6, action_mode="direct", trial_seeds=2)
    searcher = RayTuneASHA()
    run = searcher.run(env, seed=0)
    assert run.method == "ray-tune-asha" and run.trials == 6 == len(run.dev_scores) == len(run.best_curve)
    for config, score in zip(run.configs, run.dev_scores):  # grid points the env scores, at the epochs reached
        runs = backend.runs(TASK, HyperParams.from_dict(config))
        assert score in [r.dev_score for r in runs]
    assert any(c["epochs"] < 3 for c in run.configs), "ASHA stopped no trial early"
    assert run.best_score == max(run.dev_scores) == run.best_curve[-1]
    assert run.best_curve == sorted(run.best_curve) and run.trial_seconds > 0
    again = searcher.run(env, seed=0)
    assert (again.configs, again.dev_scores) == (run.configs, run.dev_scores)
    with pytest.raises(ValueError, match="reduction_factor"):
        RayTuneASHA(reduction_factor=1)


def test_ray_tune_asha_runs_live_trials_of_a_remote_env_into_its_store(cluster, tiny_model, tiny_task, tmp_path):
    store = tmp_path / "trials.sqlite"
    env = remote_env(tiny_task, tiny_model, store=str(store), budget=3)
    run = RayTuneASHA(reduction_factor=4).run(env, seed=1)
    assert run.trials == 3
    rungs = asha_rungs(SPACE["epochs"].grid, 4)
    assert rungs == [1, 5, 8] and all(c["epochs"] in rungs for c in run.configs)
    stored = list(TrialStore(store).results())
    assert len(stored) >= 3 and {r.task for r in stored} == {run.task}  # every rung, written by the Tune workers
    assert run.best_config is not None and run.best_score == max(run.dev_scores)


def test_the_recorder_runs_a_grid_as_ray_tasks_resumably(cluster, tiny_model, tiny_task, tmp_path, monkeypatch):
    """`benchmarks.record --ray`: the same grid, recorded on the cluster through the executor."""
    from benchmarks import record

    monkeypatch.setattr(record, "RESULTS", tmp_path)
    monkeypatch.setitem(record.GRIDS, "tiny", {
        "backend": "finetune", "grid": {"learning_rate": [1e-4, 1e-3]}, "fixed": {"epochs": 2, "batch_size": 16},
        "seeds": [0, 1], "tasks": [tiny_task], "max_train": None, "max_length": 32, "max_eval": 9,
    })
    record._OBJECTIVES.clear()
    store = str(tmp_path / "record.sqlite")
    runs = record.record("tiny", [tiny_task], store, workers=1, sample=None, ray={"trial_cpus": 1}, model=tiny_model)
    assert len(runs) == 4 and all(0.0 <= score <= 1.0 for *_, score, _ in runs)
    stored = list(TrialStore(store).results(backend="finetune"))
    assert len(stored) == 4 and all(r.extra["pid"] != os.getpid() for r in stored)  # trained on workers
    assert all(len(r.extra["curves"]["test_macro_f1"]) == 2 and r.sizes["dev"] <= 9 for r in stored)
    # the committed copy resumes a fresh store: nothing is trained again
    record._OBJECTIVES.clear()
    fresh = str(tmp_path / "fresh.sqlite")
    again = record.record("tiny", [tiny_task], fresh, workers=1, sample=None, ray={"trial_cpus": 1}, model=tiny_model)
    assert sorted(map(str, again)) == sorted(map(str, runs))
    assert all(r.from_store for r in TrialStore(fresh).results())
