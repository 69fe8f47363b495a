"""Reliability, determinism: the same seeds give bit-identical trajectories, across fresh
processes on the live backends and across runs on a recorded table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402,F401  (registers the env)
from legal_hpo_env.backends.recorded import RecordedBackend  # noqa: E402
from legal_hpo_env.env import ACTION_MODES  # noqa: E402
from support import recorded_table, subprocess_env  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

DETERMINISM = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    import gymnasium as gym
    import legal_hpo_env
    from legal_hpo_env.backends import Fidelity, make_backend
    from legal_hpo_env.space import HyperParams
    from legal_hpo_env.tasks import load_task

    task, model = sys.argv[1], sys.argv[2]
    env = gym.make("LegalHPO-v0", task=task, backend="head", model=model, budget=4, max_length=32, device="cpu",
                   action_mode="direct", start="random", trial_seeds=3)
    env.action_space.seed(5)
    obs, _ = env.reset(seed=7)
    head = [obs.tolist()]
    for _ in range(4):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        head.append([obs.tolist(), reward, info["config"], info["trial_seed"], info["dev_curve"], info["train_loss"]])
    config = HyperParams(epochs=2, learning_rate=3e-3, batch_size=4, dropout=0.2)
    backend = make_backend("finetune", model=model, device="cpu")
    r = backend.evaluate(load_task(task), config, Fidelity(max_length=32), seed=3)
    finetune = [r.dev_curve, r.train_loss, r.selected_epoch, r.dev_score, r.test_score, r.dev_accuracy, r.test_accuracy]
    print(json.dumps({"head": head, "finetune": finetune}))
    """
)


def test_head_and_finetune_are_identical_across_processes(tmp_path, tiny_task, tiny_model):
    """The same seeds in two fresh processes (other hash seeds, cold feature caches, one
    started while the other runs): bit-identical head trajectories and finetune metrics."""
    procs = [
        subprocess.Popen([sys.executable, "-c", DETERMINISM, tiny_task, tiny_model],
                         env=subprocess_env(tmp_path / str(i), PYTHONHASHSEED=str(i)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (1, 2)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    head = outputs[0]["head"]
    assert len({json.dumps(step[2]) for step in head[1:]}) > 1  # the trajectory does move


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_recorded_trajectories_are_identical_for_one_seed(tmp_path, action_mode):
    table = recorded_table(tmp_path / "head-v1.json.gz")

    def trajectory(seed: int) -> list:
        env = gym.make("LegalHPO-v0", task="t", backend=RecordedBackend(path=table), budget=12,
                       action_mode=action_mode, reward="regret", start="random")
        env.action_space.seed(3)
        obs, _ = env.reset(seed=seed)
        steps = [obs.tolist()]
        for _ in range(12):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            steps.append([obs.tolist(), reward, info["config"], info["trial_seed"], info.get("regret")])
        return steps

    first = trajectory(seed=4)
    assert trajectory(seed=4) == first
    assert trajectory(seed=5) != first
