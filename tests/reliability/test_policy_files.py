"""Reliability, policy files: loading one never runs code from it; a damaged one is one clear error."""

from __future__ import annotations

import base64
import json
import os
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")
cloudpickle = pytest.importorskip("cloudpickle")

import gymnasium as gym  # noqa: E402

import legal_hpo_env  # noqa: E402,F401
from agents.base import PolicyFileError  # noqa: E402
from agents.ppo import load_ppo, make_ppo  # noqa: E402
from agents.reinforce import REINFORCE  # noqa: E402
from legal_hpo_env.cli import main as cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# the env `legal-hpo tune` gives a learned tuner (agents/training.py's recipe)
ENV = {"task": "overruling", "budget": 4, "action_mode": "direct", "observation": "adaptive", "reward": "regret"}


class WritesAFile:
    """What an attacker pickles: unpickling it creates ``path`` (a harmless stand-in for
    ``os.system``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("the file ran code",))


def booby_trapped_ppo(tmp_path: Path) -> tuple[Path, Path]:
    """A real PPO policy whose zip's ``data`` also holds a cloudpickled payload."""
    model = make_ppo(ENV, n_envs=1, seed=0)
    clean = tmp_path / "clean.zip"
    model.save(clean)
    marker = tmp_path / "pwned"
    trapped = tmp_path / "trapped.zip"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(trapped, "w") as dst:
        for item in src.namelist():
            payload = src.read(item)
            if item == "data":
                data = json.loads(payload)
                payload_code = base64.b64encode(cloudpickle.dumps(WritesAFile(str(marker)))).decode()
                data["policy_class"] = {":serialized:": payload_code}
                payload = json.dumps(data).encode()
            dst.writestr(item, payload)
    return trapped, marker


def test_sb3s_own_loader_would_run_the_payload(tmp_path):
    """The threat is real: this is what ``tune --policy`` did before (so the next test can fail)."""
    from stable_baselines3 import PPO

    trapped, marker = booby_trapped_ppo(tmp_path)
    try:
        PPO.load(trapped)
    except Exception:  # the payload replaced the policy class: what happens next does not matter
        pass
    assert marker.exists()


def test_a_booby_trapped_ppo_policy_is_loaded_without_running_its_payload(tmp_path, capsys):
    trapped, marker = booby_trapped_ppo(tmp_path)
    model = load_ppo(trapped, ENV, n_envs=1)
    assert not marker.exists()
    env = gym.make("LegalHPO-v0", **ENV)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    # the CLI path: tune with that file as the policy
    report = tmp_path / "report.json"
    assert cli(["tune", "--agent", "ppo", "--policy", str(trapped), "--task", "overruling", "--budget", "4",
                "--report", str(report)]) == 0
    assert not marker.exists() and json.loads(report.read_text())["agent"] == "ppo"


def test_a_ppo_policy_for_other_spaces_is_refused_by_name(tmp_path):
    model = make_ppo({**ENV, "action_mode": "delta"}, n_envs=1, seed=0)
    model.save(tmp_path / "delta.zip")
    with pytest.raises(PolicyFileError, match="other spaces"):
        load_ppo(tmp_path / "delta.zip", ENV, n_envs=1)


def damaged_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "random bytes": os.urandom(4096),
    }
    out = {}
    for name, content in cases.items():
        out[name] = tmp_path / f"{name.replace(' ', '-')}{good.suffix}"
        out[name].write_bytes(content)
    out["missing"] = tmp_path / f"missing{good.suffix}"
    return out


@pytest.mark.parametrize("damage", ["truncated", "empty", "random bytes", "missing"])
def test_a_damaged_reinforce_policy_is_one_clear_error(tmp_path, damage, capsys):
    env = gym.make("LegalHPO-v0", **ENV)
    good = tmp_path / "good.pt"
    REINFORCE(env, seed=0).save(good)
    bad = damaged_files(tmp_path, good)[damage]
    with pytest.raises(PolicyFileError, match="does not exist" if damage == "missing" else "not a readable"):
        REINFORCE.load(bad, env=env)
    assert cli(["tune", "--agent", "reinforce", "--policy", str(bad), "--task", "overruling", "--budget", "4",
                "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("legal-hpo tune: error:") and str(bad) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncated", "empty", "random bytes", "missing"])
def test_a_damaged_ppo_policy_is_one_clear_error(tmp_path, damage):
    good = tmp_path / "good.zip"
    make_ppo(ENV, n_envs=1, seed=0).save(good)
    with pytest.raises(PolicyFileError, match=str(tmp_path)):
        load_ppo(damaged_files(tmp_path, good)[damage], ENV, n_envs=1)
