"""The shipped tuners on a task in no recorded table, trained live, beside TPE and random search.

The task is built from the data at run time and never stored in the repository: which of
the 22 CUAD clause categories a clause belongs to (every CUAD file's ``Yes`` clauses,
labelled with their category; a text that is a positive of several categories is left
out). It is a 22-way task, where every task of the suite is yes/no or at most 13-way, and
no table holds its landscape. Its texts are those of the CUAD tasks, which the shipped
tuners were trained on (``suite:train`` holds the contract-clause family) as 22 binary
tasks: the landscape is new, the texts are not.

Every method tunes it live on the ``head`` backend (features of the frozen MiniLM, a
trained head; a trial takes about a second), budget 20, over ``--seeds`` episode seeds:

* random search, TPE, ASHA and the LexGLUE recipe;
* the best fixed action sequence of each mode, fitted on ``suite:train`` of the head table;
* the shipped tuners (``agents/policies/``: REINFORCE and PPO, ``direct`` and ``delta``),
  each also with its feedback blanked.

No landscape is known, so scores are normalised by the best and worst dev score of every
configuration any method tried (pooled): regret 0 is the best configuration anyone found.
Live trials train once per configuration (one training seed; the trial store shares them
between methods), so the dev score of a configuration is the same for every method.

    python -m benchmarks.live_transfer [--seeds 10] [--budget 20]

Writes benchmarks/results/live-transfer.json.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import data_dir, write_result
from benchmarks.stats import paired_test, summarise


def clause_types_csv(folder: Path) -> tuple[Path, dict[str, int]]:
    """Write ``cuad-clause-types.csv`` (text, label) from the CUAD files; return it and its label counts."""
    from legal_hpo_env.tasks.suite import TASK_SETS

    categories: dict[str, set[str]] = {}
    for task in TASK_SETS["family:contract_clauses"]:
        with open(Path(data_dir()) / "legalbench" / f"{task}.tsv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["label"] == "Yes":
                    categories.setdefault(row["text"].strip(), set()).add(task.removeprefix("cuad_"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cuad-clause-types.csv"
    counts: dict[str, int] = {}
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for text, labels in sorted(categories.items()):
            if len(labels) == 1:  # a clause positive for several categories has no single label
                (label,) = labels
                out.writerow([text, label])
                counts[label] = counts.get(label, 0) + 1
    return path, dict(sorted(counts.items()))


def methods(budget: int, envs: dict[str, Any], kwargs: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, str, bool]]:
    """``name -> (searcher, action mode, blanked)``; ``envs``, ``kwargs``: each mode's env and its arguments."""
    from agents import ASHA, DefaultRecipe, PolicySearcher, RandomSearch, TPESearch
    from agents.fixed import FixedSequence
    from agents.pretrained import TRAINING_TASKS, load_pretrained
    from legal_hpo_env.backends.recorded import RecordedBackend
    from legal_hpo_env.tasks.suite import TASK_SETS

    table = RecordedBackend("head")
    out: dict[str, tuple[Any, str, bool]] = {
        "random": (RandomSearch(), "direct", False),
        "tpe": (TPESearch(ordered=True, n_startup_trials=5), "direct", False),
        "asha": (ASHA(), "direct", False),
        "default": (DefaultRecipe(), "direct", False),
    }
    for mode in ("direct", "delta"):
        out[f"fixed-{mode}"] = (FixedSequence.fit(table, list(TASK_SETS[TRAINING_TASKS]), budget, mode), mode, False)
        for agent in ("reinforce", "ppo"):
            policy = load_pretrained(agent, mode, env=envs[mode], env_kwargs=kwargs[mode])
            for blanked in (False, True):
                name = f"{agent}-{mode}" + ("-blanked" if blanked else "")
                out[name] = (PolicySearcher(policy, name=name, deterministic=False), mode, blanked)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--workdir", help="where the task's CSV and the trial store go (default: the feature cache's "
                        "live-transfer folder, outside the repository)")
    args = parser.parse_args(argv)

    import gymnasium as gym
    import torch

    import legal_hpo_env  # noqa: F401
    from agents.training import tuner_env_kwargs
    from legal_hpo_env.backends.head import cache_dir
    from legal_hpo_env.wrappers import BlankFeedback

    torch.set_num_threads(1)
    workdir = Path(args.workdir) if args.workdir else cache_dir() / "live-transfer"
    path, counts = clause_types_csv(workdir)
    task = f"custom:{path}"
    live = {"backend": "head", "data_dir": data_dir(), "budget": args.budget, "store": str(workdir / "trials.sqlite")}
    kwargs = {mode: tuner_env_kwargs(task, mode, **live, start="default") for mode in ("direct", "delta")}
    envs = {mode: gym.make("LegalHPO-v0", **kwargs[mode]) for mode in kwargs}
    played = methods(args.budget, envs, kwargs)
    runs: dict[str, list[Any]] = {}
    for name, (searcher, mode, blanked) in played.items():
        env = BlankFeedback(envs[mode]) if blanked else envs[mode]
        start = time.perf_counter()
        runs[name] = [searcher.run(env, seed=1000 + s) for s in range(args.seeds)]
        print(f"{name:26s} best dev {np.mean([r.best_score for r in runs[name]]):.3f} test "
              f"{np.mean([r.best_test_score for r in runs[name]]):.3f} ({time.perf_counter() - start:.0f}s)",
              file=sys.stderr)
    tried = [s for rs in runs.values() for r in rs for s in r.dev_scores]
    best, worst = max(tried), min(tried)

    def regret_curve(run) -> list[float]:
        return [(best - b) / (best - worst) for b in run.best_curve]

    finals = {(s,): {name: regret_curve(rs[s])[-1] for name, rs in runs.items()} for s in range(args.seeds)}
    write_result("live-transfer", {
        "command": "python -m benchmarks.live_transfer " + " ".join(sys.argv[1:] if argv is None else argv),
        "task": {"name": "cuad-clause-types (built from the CUAD files' positive clauses)", "labels": counts,
                 "examples": sum(counts.values())},
        "setup": {"backend": "head (live)", "budget": args.budget, "seeds": args.seeds,
                  "episode_seeds": f"1000..{999 + args.seeds}", "policies": "agents/policies (trained on suite:train)",
                  "fixed": "fitted on suite:train of the head table",
                  "normalisation": "(best - found) / (best - worst) over every dev score any method got",
                  "pooled_dev": {"best": best, "worst": worst, "configurations": len(set(
                      tuple(sorted(c.items())) for rs in runs.values() for r in rs for c in r.configs))}},
        "methods": {
            name: {"regret": summarise([regret_curve(r) for r in rs]),
                   "best_dev": float(np.mean([r.best_score for r in rs])),
                   "test_of_pick": float(np.mean([r.best_test_score for r in rs])),
                   "test_of_pick_std": float(np.std([r.best_test_score for r in rs])),
                   "vs_tpe": None if name == "tpe" else paired_test(finals, name, "tpe")}
            for name, rs in runs.items()
        },
    })


if __name__ == "__main__":
    main()
