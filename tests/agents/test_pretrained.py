"""Shipped policies: built with their manifest, loaded only on the search space they were trained on."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import agents.pretrained as pretrained
from agents.base import PolicyFileError
from agents.reinforce import PolicySearcher
from agents.training import tuner_env_kwargs
from legal_hpo_env.cli import main


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policies")
    entries = pretrained.build("head-v1", steps=400, seed=0, folder=folder, tasks=["overruling", "scotus"])
    return folder, entries


@pytest.fixture
def installed(shipped, monkeypatch):
    folder, _ = shipped
    monkeypatch.setattr(pretrained, "_folder", lambda: folder)
    return folder


def test_build_writes_every_policy_and_says_how_it_was_trained(shipped):
    folder, entries = shipped
    assert sorted(entries) == ["ppo-delta", "ppo-direct", "reinforce-delta", "reinforce-direct"]
    manifest = json.loads((folder / "policies.json").read_text())
    for name, entry in manifest["policies"].items():
        assert (folder / entry["file"]).is_file()
        assert entry["tasks"] == ["overruling", "scotus"] and entry["table"] == "head-v1" and entry["steps"] == 400
        assert entry["table_version"] == 1
        assert entry["env"]["observation"] == "adaptive" and entry["env"]["action_mode"] == name.split("-")[1]
        assert entry["search_space"] == pretrained.search_space_signature()


@pytest.mark.parametrize("agent", ["reinforce", "ppo"])
@pytest.mark.parametrize("mode", ["direct", "delta"])
def test_the_packaged_policies_match_this_versions_search_space_and_table(agent, mode):
    """A change of the search space or of the default table must come with rebuilt policies."""
    from legal_hpo_env.backends.recorded import RecordedBackend

    entry = pretrained.manifest()[f"{agent}-{mode}"]
    table = RecordedBackend(entry["table"])
    assert entry["search_space"] == pretrained.search_space_signature()
    assert entry["table_version"] == table.metadata["version"], "rebuild: python -m agents.pretrained"
    kwargs = tuner_env_kwargs("contract_nli", mode)
    assert pretrained.load_pretrained(agent, mode, env=gym.make("LegalHPO-v0", **kwargs), env_kwargs=kwargs)


@pytest.mark.parametrize("agent", ["reinforce", "ppo"])
@pytest.mark.parametrize("mode", ["direct", "delta"])
def test_a_shipped_policy_tunes_a_task_it_never_saw(installed, agent, mode):
    kwargs = tuner_env_kwargs("unfair_tos", mode, table="head-v1", budget=6)
    env = gym.make("LegalHPO-v0", **kwargs)
    policy = pretrained.load_pretrained(agent, mode, env=env, env_kwargs=kwargs)
    run = PolicySearcher(policy, deterministic=False).run(env, seed=0)
    assert run.trials == 6 and run.task == "unfair_tos"


def test_a_policy_of_another_search_space_is_refused(installed):
    manifest_file = installed / "policies.json"
    original = manifest_file.read_text()
    data = json.loads(original)
    data["policies"]["reinforce-direct"]["search_space"]["grids"]["learning_rate"] = [1e-5, 1e-2]
    manifest_file.write_text(json.dumps(data))
    try:
        with pytest.raises(PolicyFileError, match="another search space"):
            pretrained.load_pretrained("reinforce", "direct")
    finally:
        manifest_file.write_text(original)
    with pytest.raises(PolicyFileError, match="no shipped reinforce-single"):
        pretrained.load_pretrained("reinforce", "single")


def test_tune_plays_the_shipped_policy_by_default(installed, tmp_path, capsys):
    report = tmp_path / "r.json"
    argv = ["tune", "--agent", "reinforce", "--table", "head-v1", "--budget", "5", "--report", str(report)]
    assert main([*argv, "--task", "unfair_tos"]) == 0
    assert "training" not in capsys.readouterr().err  # nothing trained: the shipped policy played
    assert len(json.loads(report.read_text())["configs"]) == 5
    assert main([*argv, "--task", "scotus"]) == 0  # a task it was trained on: said so
    assert "was trained on scotus" in capsys.readouterr().err
