"""The evaluation protocol: leave one task family out, on a recorded table.

For each family of the table's tasks, the learned methods are trained on every *other*
family and every method is tested on that family's tasks, so that no method is ever
scored on a task it was trained on (nor on a sibling of it). Over ``--seeds`` episode
seeds at a budget of ``--budget`` trials it reports, per task and over every task:

* the normalised regret of the incumbent, (best - found) / (best - worst), after each
  trial, with 95% confidence bands, and its value at 5, 10 and 20 trials; "found" is the
  mean over recorded seeds of the configuration the method holds as its best (chosen on
  the one noisy dev seed it saw). Scored on dev (the landscape the search sees) and on
  test (what the selected configuration is worth on unseen data);
* the mean rank of each method at the budget (the oracle is a reference, not ranked);
* a paired Wilcoxon signed-rank test of each method against TPE over (task, seed);
* where each task's optimum lies on the grid.

Methods: random search, TPE, ASHA (:class:`agents.asha.ASHA`, successive halving over
epochs; a configuration counts as one trial however many epochs it reached), the recipe,
the oracle (plays the best configuration), the
best fixed action sequence of each action mode fitted on the training families, and the
learned policies (REINFORCE, PPO; RecurrentPPO with ``--agents recurrent-ppo``) in
``direct`` and ``delta`` mode, each also played with
its feedback blanked (:class:`legal_hpo_env.wrappers.BlankFeedback`): a policy that does
as well blind does not use what it observes. Delta-mode methods are also played from
random starts. Optional: Ray Tune's ASHA (``--ray-tune``; the same search as ``asha``
through Ray Tune, which spends seconds per trial on scheduling).

    python -m benchmarks.protocol [--table head] [--seeds 20] [--budget 20] [--steps 60000]
    # transfer across fidelities: tuners fitted on the head table, tested on the finetune table
    python -m benchmarks.protocol --table finetune --train-table head --output protocol-finetune-from-head

Writes benchmarks/results/protocol-<table>.json, protocol-<table>-regret.png and
landscape-<table>.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, write_result
from benchmarks.stats import average_ranks, paired_test, summarise


def env_kwargs(table: str, task: str | list[str], budget: int, mode: str, start: str = "default") -> dict[str, Any]:
    """Every method plays the tuners' env (the adaptive observation; baselines ignore it)."""
    from agents.training import tuner_env_kwargs

    return tuner_env_kwargs(task, mode, table=table, budget=budget, start=start)


def make_env(table: str, task: str | list[str], budget: int, mode: str, start: str = "default"):
    import gymnasium as gym

    import legal_hpo_env  # noqa: F401

    return gym.make("LegalHPO-v0", **env_kwargs(table, task, budget, mode, start))


class Oracle:
    """Knows the table: plays the configuration with the best mean dev score."""

    name = "oracle"

    def run(self, env, seed):
        from agents.base import config_to_action, play_episode

        best: dict[str, Any] = {}

        def choose(obs):
            view = env.unwrapped.view
            if view.task not in best:
                best[view.task] = max(view.space.grid_points(), key=view.mean_score)
            return config_to_action(best[view.task])

        return play_episode(env, choose, seed, method=self.name)


def train(agent: str, table: str, tasks: list[str], budget: int, mode: str, steps: int, seed: int):
    """A policy of ``agent`` trained on ``tasks`` (sampled per episode), by the package's one recipe."""
    from agents.training import train_tuner, tuner_env_kwargs

    return train_tuner(agent, tuner_env_kwargs(tasks, mode, table=table, budget=budget), steps, seed)


def regret_curves(run, backend, task: str) -> tuple[list[float], list[float]]:
    """Per trial: the incumbent's normalised regret on dev and on test."""
    from legal_hpo_env.space import HyperParams

    dev_land, test_land = backend.landscape(task), backend.landscape(task, "test")
    dev, test, best_seen, incumbent = [], [], -np.inf, None
    for config, score in zip(run.configs, run.dev_scores):
        if score > best_seen:
            best_seen, incumbent = score, HyperParams.from_dict(config)
        if incumbent is None:  # every trial so far diverged: the worst configuration's regret
            dev.append(1.0)
            test.append(1.0)
            continue
        dev.append(dev_land.regret(backend.mean_score(task, incumbent)))
        test.append(test_land.regret(backend.mean_score(task, incumbent, "test")))
    return dev, test


def optimum(backend, task: str, configs: list | None = None) -> dict[str, Any]:
    """Where the task's best configuration (mean dev score) lies on each dimension of its grid.

    ``configs``: the grid points to search (default: all; a recording in progress has fewer).
    """
    space = backend.space(task)
    best = max(configs or space.grid_points(), key=lambda c: backend.mean_score(task, c))
    where = {}
    for d in space.dimensions:
        if len(d.grid) > 2 and not d.categorical:
            i = d.grid.index(getattr(best, d.name))
            where[d.name] = "low edge" if i == 0 else "high edge" if i == len(d.grid) - 1 else "interior"
    out = {"config": best.to_dict(), "dev": backend.mean_score(task, best),
           "test": backend.mean_score(task, best, "test"), "position": where}
    if where.get("learning_rate", "interior") != "interior":
        # on a plateau that reaches the edge the best point is there by noise: how far is the best inside?
        edge = best.learning_rate
        inside = max((c for c in configs or space.grid_points() if c.learning_rate != edge),
                     key=lambda c: backend.mean_score(task, c))
        seeds = [r.dev_score for r in backend.runs(task, best)]
        out["best_inside"] = {"config": inside.to_dict(), "dev": backend.mean_score(task, inside),
                              "gap": out["dev"] - backend.mean_score(task, inside),
                              "standard_error": float(np.std(seeds, ddof=1) / np.sqrt(len(seeds)))
                              if len(seeds) > 1 else None}
    return out


def families_of(backend) -> dict[str, list[str]]:
    from legal_hpo_env.tasks import FAMILIES

    out: dict[str, list[str]] = {}
    for task in backend.tasks:
        index = int(backend.meta_features(task)["family"])
        out.setdefault(FAMILIES[index] if index >= 0 else "custom", []).append(task)
    return out


def methods_for_fold(args, train_backend, train_tasks: list[str], training: dict[str, float]) -> dict[str, Any]:
    """``name -> (searcher, action mode, start, blanked)`` for one held-out family.

    The learned methods and fixed sequences are fitted on ``train_tasks`` of ``train_backend``
    (the table of ``--train-table``).
    """
    from agents import ASHA, DefaultRecipe, PolicySearcher, RandomSearch, TPESearch
    from agents.fixed import FixedSequence

    methods: dict[str, Any] = {
        "random": (RandomSearch(), "direct", "default", False),
        "tpe": (TPESearch(ordered=True, n_startup_trials=5), "direct", "default", False),
        "asha": (ASHA(), "direct", "default", False),
        "default": (DefaultRecipe(), "direct", "default", False),
        "oracle": (Oracle(), "direct", "default", False),
    }
    if args.ray_tune:
        from agents.ray_tune import RayTuneASHA

        methods["ray-tune-asha"] = (RayTuneASHA(), "direct", "default", False)
    for mode in args.modes:
        fixed = FixedSequence.fit(train_backend, train_tasks, args.budget, mode)
        methods[f"fixed-{mode}"] = (fixed, mode, "default", False)
        for agent in args.agents:
            start = time.perf_counter()
            policy = train(agent, args.train_table or args.table, train_tasks, args.budget, mode, args.steps, seed=0)
            training.setdefault(f"{agent}-{mode}", 0.0)
            training[f"{agent}-{mode}"] += time.perf_counter() - start
            print(f"  trained {agent}-{mode} in {time.perf_counter() - start:.0f}s", file=sys.stderr)
            for blanked in (False, True):
                name = f"{agent}-{mode}" + ("-blanked" if blanked else "")
                methods[name] = (PolicySearcher(policy, name=name, deterministic=False), mode, "default", blanked)
    if "delta" in args.modes:  # from random starts as well
        for name, (searcher, mode, _, blanked) in list(methods.items()):
            if mode == "delta":
                methods[f"{name}@random-start"] = (searcher, mode, "random", blanked)
    return methods


def references(name: str, agents: list[str]) -> dict[str, str]:
    """What a learned method must beat besides TPE: its blanked self and the fixed sequence of its mode and start.

    ``"ppo-delta@random-start"`` -> ``{"blanked": "ppo-delta-blanked@random-start",
    "fixed": "fixed-delta@random-start"}``; other methods have none.
    """
    base, _, start = name.partition("@")
    agent, _, mode = base.rpartition("-")
    if agent not in agents:  # a baseline, or a blanked policy ("ppo-delta-blanked": agent "ppo-delta")
        return {}
    suffix = f"@{start}" if start else ""
    return {"blanked": f"{base}-blanked{suffix}", "fixed": f"fixed-{mode}{suffix}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="head")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60000, help="env steps of training per learned policy")
    parser.add_argument("--agents", nargs="*", default=["reinforce", "ppo"],
                        choices=["reinforce", "ppo", "recurrent-ppo"])
    parser.add_argument("--modes", nargs="*", default=["direct", "delta"], choices=["direct", "delta"])
    parser.add_argument("--ray-tune", action="store_true", help="also run Ray Tune ASHA (needs legal-hpo-env[ray])")
    parser.add_argument("--train-table", help="fit the learned methods and fixed sequences on this table's tasks "
                        "of the other families (default: --table); e.g. head, to test transfer across fidelities")
    parser.add_argument("--output", help="result name (default protocol-<table>)")
    args = parser.parse_args(argv)

    from agents.training import PPO_SETTINGS, REINFORCE_SETTINGS, TRAIN_START, tuner_env_kwargs
    from legal_hpo_env.backends.recorded import RecordedBackend
    from legal_hpo_env.wrappers import BlankFeedback

    backend = RecordedBackend(args.table)
    families = families_of(backend)
    train_backend = RecordedBackend(args.train_table) if args.train_table else backend
    train_families = families_of(train_backend)
    if len(families) < 2:
        raise SystemExit(f"the {args.table!r} table holds one family ({list(families)}): nothing to hold out.")
    training: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    finals: dict[str, dict[tuple[str, int], dict[str, float]]] = {"dev": {}, "test": {}}
    curves: dict[str, dict[str, list[list[float]]]] = {"dev": {}, "test": {}}
    names: list[str] = []
    cost: dict[str, list[float]] = {}  # per method: the recorded training seconds of each episode
    for family, held_out in families.items():
        train_tasks = [t for f, tasks in train_families.items() if f != family for t in tasks]
        print(f"fold {family}: train on {len(train_tasks)} tasks, test on {held_out}", file=sys.stderr)
        methods = methods_for_fold(args, train_backend, train_tasks, training)
        names = names or list(methods)
        for task in held_out:
            results[task] = {"family": family, "landscape": backend.landscape(task).to_dict(),
                             "test_landscape": backend.landscape(task, "test").to_dict(),
                             "optimum": optimum(backend, task), "methods": {}}
            envs: dict[tuple[str, str], Any] = {}
            for name, (searcher, mode, start, blanked) in methods.items():
                env = envs.get((mode, start))
                if env is None:
                    env = envs[(mode, start)] = make_env(args.table, task, args.budget, mode, start)
                played = BlankFeedback(env) if blanked else env
                dev, test = [], []
                for seed in range(args.seeds):
                    run = searcher.run(played, seed=1000 + seed)
                    cost.setdefault(name, []).append(run.trial_seconds)
                    d, t = regret_curves(run, backend, task)
                    dev.append(d)
                    test.append(t)
                    finals["dev"].setdefault((task, seed), {})[name] = d[-1]
                    finals["test"].setdefault((task, seed), {})[name] = t[-1]
                curves["dev"].setdefault(name, []).extend(dev)
                curves["test"].setdefault(name, []).extend(test)
                results[task]["methods"][name] = {"regret": summarise(dev), "test_regret": summarise(test)}
                print(f"  {task:40s} {name:32s} regret@{args.budget} dev {np.mean([c[-1] for c in dev]):.3f} "
                      f"test {np.mean([c[-1] for c in test]):.3f}", file=sys.stderr)

    ranked = [n for n in names if n != "oracle"]
    summary: dict[str, Any] = {}
    for split in ("dev", "test"):
        ranks = average_ranks(finals[split], ranked)
        summary[split] = {
            name: {"regret": summarise(curves[split][name]), "mean_rank": ranks.get(name),
                   "vs_tpe": None if name == "tpe" else paired_test(finals[split], name, "tpe"),
                   **{f"vs_{kind}": {"reference": other, **paired_test(finals[split], name, other)}
                      for kind, other in references(name, args.agents).items()}}
            for name in names
        }
    tuned = tuner_env_kwargs([], "direct")
    edges = {t: r["optimum"]["position"].get("learning_rate") for t, r in results.items()}
    write_result(args.output or f"protocol-{args.table}", {
        "command": "python -m benchmarks.protocol " + " ".join(sys.argv[1:] if argv is None else argv),
        "setup": {
            "table": args.table,
            "train_table": args.train_table or args.table,
            "table_metadata": {k: v for k, v in backend.metadata.items() if k != "recorded_on"},
            "protocol": "leave one family out: learned methods train on the other families' tasks",
            "folds": {f: {"test": held, "train": sum(len(t) for g, t in train_families.items() if g != f)}
                      for f, held in families.items()},
            "budget": args.budget, "seeds": args.seeds, "episode_seeds": f"1000..{999 + args.seeds}",
            "trial_seeds": "drawn by the env from the recorded seeds",
            "tuners": {"observation": tuned["observation"], "reward": tuned["reward"], "train_start": TRAIN_START,
                       "steps": args.steps, "reinforce": REINFORCE_SETTINGS, "ppo": PPO_SETTINGS,
                       "recipe": "agents/training.py"},
            "training_seconds": training,
            "ranks": "mean rank at the budget over (task, seed); ties share their mean rank; oracle not ranked",
            "cost": "mean over episodes of the recorded training seconds the trials would have cost",
            "test": "two-sided Wilcoxon signed-rank over (task, seed) of the regret at the budget; each learned "
                    "method also against its blanked self (vs_blanked) and the fixed sequence of its mode (vs_fixed)",
        },
        "summary": summary,
        "cost": {name: float(np.mean(seconds)) for name, seconds in cost.items()},
        "optimum_learning_rate": {pos: sorted(t for t, p in edges.items() if p == pos)
                                  for pos in ("low edge", "interior", "high edge")},
        "tasks": results,
    })
    plot(summary, results, args)


def plot(summary: dict[str, Any], results: dict[str, Any], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [n for n in summary["dev"] if not n.endswith("@random-start")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, split in zip(axes, ("dev", "test")):
        for name in shown:
            row = summary[split][name]["regret"]
            mean, half = np.asarray(row["mean"]), np.asarray(row["ci95"])
            x = np.arange(1, len(mean) + 1)
            style = "--" if name.endswith("-blanked") else "-"
            ax.plot(x, mean, style, label=name)
            ax.fill_between(x, mean - half, mean + half, alpha=0.12)
        ax.set_title(f"{split} regret, {len(results)} held-out tasks")
        ax.set_xlabel("trials")
        ax.set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylabel("normalised regret (best-found)/(best-worst)")
    axes[-1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.output or 'protocol-' + args.table}-regret.png", dpi=110)
    plt.close(fig)
    landscape_plot(args.table)


def landscape_plot(table: str) -> None:
    """Mean dev score over learning rate x batch size at the most epochs (averaged over the other dimensions)."""
    import matplotlib.pyplot as plt

    from legal_hpo_env.backends.recorded import RecordedBackend

    backend = RecordedBackend(table)
    tasks = backend.tasks
    cols = min(len(tasks), 6)
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, tasks):
        space = backend.space(task)
        lrs, batches = space["learning_rate"].grid, space["batch_size"].grid
        grid = np.zeros((len(batches), len(lrs)))
        counts = np.zeros_like(grid)
        for config in space.grid_points():
            if config.epochs != max(space["epochs"].grid):
                continue
            i, j = batches.index(config.batch_size), lrs.index(config.learning_rate)
            grid[i, j] += backend.mean_score(task, config)
            counts[i, j] += 1
        ax.imshow(grid / np.maximum(counts, 1), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], rotation=60, fontsize=6)
        ax.set_yticks(range(len(batches)), [str(b) for b in batches], fontsize=6)
        ax.set_title(task, fontsize=7)
    fig.suptitle(f"recorded '{table}' table: mean dev score over learning rate (x) and batch size (y)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"landscape-{table}.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
