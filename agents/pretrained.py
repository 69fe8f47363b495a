"""The learned tuners this package ships, trained on the suite's training families.

``agents/policies/`` holds one policy per agent and action mode (``reinforce-direct.pt``,
``ppo-delta.zip``...) and ``policies.json``, which says how each was trained (table,
tasks, steps, seed, the command) and on which search space. A shipped policy is loaded
only where the search space is the one it was trained on: a policy file is weights, and
weights mean nothing on another grid.

``legal-hpo tune --agent reinforce|ppo`` plays these by default. They were trained on
``suite:train`` (contract clauses, terms of service, case law); the tasks of
``suite:test`` and your own data are new to them. Rebuild them (and the manifest) with:

    python -m agents.pretrained [--steps 200000] [--table head]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from agents.base import PolicyFileError
from agents.training import PPO_SETTINGS, REINFORCE_SETTINGS, train_tuner, tuner_env_kwargs
from legal_hpo_env.env import observation_layout
from legal_hpo_env.space import SPACE

__all__ = ["MODES", "manifest", "search_space_signature", "load_pretrained", "build"]

#: The action modes a policy is shipped for.
MODES = ("direct", "delta")
#: The task set the shipped policies are trained on.
TRAINING_TASKS = "suite:train"
#: The tuners shipped.
SHIPPED = ("reinforce", "ppo")
_SUFFIX = {"reinforce": ".pt", "ppo": ".zip"}


def _folder() -> Any:
    return resources.files("agents") / "policies"


def search_space_signature() -> dict[str, Any]:
    """What a policy's weights are tied to: every grid of the search space and the observation's size."""
    return {"grids": {d.name: list(d.grid) for d in SPACE.dimensions},
            "observation": len(observation_layout("adaptive"))}


def manifest() -> dict[str, Any]:
    """The shipped policies, by name (``"reinforce-direct"``...), with how each was trained."""
    entry = _folder() / "policies.json"
    if not entry.is_file():
        return {}
    return json.loads(entry.read_text(encoding="utf-8"))["policies"]


def load_pretrained(agent: str, action_mode: str, env: Any = None, env_kwargs: dict[str, Any] | None = None) -> Any:
    """The shipped policy of ``agent`` for ``action_mode``.

    Args:
        agent: ``"reinforce"`` or ``"ppo"``.
        action_mode: ``"direct"`` or ``"delta"``.
        env: the env a REINFORCE policy will play (its spaces are checked).
        env_kwargs: the env arguments a PPO policy is rebuilt with.

    Raises:
        PolicyFileError: none is shipped for this agent and mode, or the search space
            changed since it was trained.
    """
    name = f"{agent}-{action_mode}"
    entry = manifest().get(name)
    if entry is None:
        raise PolicyFileError(f"no shipped {name} policy: train one with `legal-hpo train-agent --agent {agent} "
                              f"--action-mode {action_mode} --task suite:train` and pass it with --policy.")
    if entry["search_space"] != search_space_signature():
        raise PolicyFileError(f"the shipped {name} policy was trained on another search space than this version's: "
                              "rebuild it with `python -m agents.pretrained`.")
    with resources.as_file(_folder() / entry["file"]) as path:
        if agent == "reinforce":
            from agents.reinforce import REINFORCE

            return REINFORCE.load(path, env=env)
        from agents.ppo import load_ppo

        return load_ppo(path, env_kwargs or {}, n_envs=1)


def build(table: str, steps: int, seed: int, folder: Path, tasks: str | list[str] = TRAINING_TASKS) -> dict[str, Any]:
    """Train every shipped policy on ``tasks`` of ``table`` and write them, with their manifest, to ``folder``."""
    from legal_hpo_env.backends.recorded import RecordedBackend

    folder.mkdir(parents=True, exist_ok=True)
    version = RecordedBackend(table).metadata["version"]  # "head" is the newest version: say which
    entries = {}
    for agent in SHIPPED:
        for mode in MODES:
            kwargs = tuner_env_kwargs(tasks, mode, table=table)
            start = time.perf_counter()
            policy = train_tuner(agent, kwargs, steps, seed, progress=True)
            name = f"{agent}-{mode}"
            policy.save(folder / f"{name}{_SUFFIX[agent]}")
            entries[name] = {
                "file": f"{name}{_SUFFIX[agent]}", "agent": agent, "action_mode": mode, "table": table,
                "table_version": version,
                "tasks": tasks, "env": {k: v for k, v in kwargs.items() if k != "task"}, "steps": steps,
                "seed": seed, "settings": REINFORCE_SETTINGS if agent == "reinforce" else PPO_SETTINGS,
                "training_seconds": round(time.perf_counter() - start, 1), "search_space": search_space_signature(),
            }
    command = "python -m agents.pretrained " + " ".join(sys.argv[1:])
    (folder / "policies.json").write_text(json.dumps({"command": command, "policies": entries}, indent=1) + "\n",
                                          encoding="utf-8")
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="head", help="the recorded table to train on (default: head)")
    parser.add_argument("--steps", type=int, default=200_000, help="env steps of training per policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build(args.table, args.steps, args.seed, Path(__file__).resolve().parent / "policies")


if __name__ == "__main__":
    main()
