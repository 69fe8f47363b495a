"""The evaluation protocol: every agent and baseline on every recorded task.

At a budget of ``--budget`` trials over ``--seeds`` episode seeds, on the recorded
backend: normalised regret of the incumbent, (best - found) / (best - worst) (YAHPO's
form) and (best - found) / (best - median), against trials used, with 95% confidence
bands; its value at 5, 10 and 20 trials; and the mean rank of each method. "found" is
the mean over recorded seeds of the configuration the method holds as its best (it
observed one noisy seed). RL agents are reported twice: trained on the task itself, and
trained on the other tasks and tested on the held-out one (leave-one-task-out).

    python -m benchmarks.protocol [--table head] [--seeds 20] [--budget 20]

Writes benchmarks/results/protocol-<table>.json, protocol-<table>-regret.png and
landscape-<table>.png.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, write_result

CHECKPOINTS = (5, 10, 20)


def make_env(table: str, task: str | list[str], budget: int, reward: str = "score"):
    import gymnasium as gym

    import legal_hpo_env  # noqa: F401

    return gym.make("LegalHPO-v0", task=task, backend="recorded", table=table, budget=budget,
                    action_mode="direct", reward=reward)


class Oracle:
    """Knows the table: plays the configuration with the best mean dev score."""

    name = "oracle"

    def run(self, env, seed):
        from agents.base import config_to_action, play_episode

        unwrapped = env.unwrapped
        best: dict[str, Any] = {}

        def choose(obs):
            view = unwrapped.view
            if view.task not in best:
                best[view.task] = max(view.space.grid_points(), key=view.mean_score)
            return config_to_action(best[view.task])

        return play_episode(env, choose, seed, method=self.name)


def regret_curve(run, backend, task: str, land) -> tuple[list[float], list[float], list[float]]:
    """Per trial: the incumbent's regret in both normalisations, and its mean dev score."""
    from legal_hpo_env.space import HyperParams

    yahpo, median, scores, best_seen, incumbent = [], [], [], -math.inf, None
    for config, score in zip(run.configs, run.dev_scores):
        if score > best_seen:
            best_seen, incumbent = score, HyperParams.from_dict(config)
        found = land.worst if incumbent is None else backend.mean_score(task, incumbent)
        yahpo.append(land.regret(found))
        median.append(land.regret_to_median(found))
        scores.append(found)
    return yahpo, median, scores


def train_reinforce(table: str, tasks: list[str], budget: int, steps: int, seed: int):
    from agents.reinforce import REINFORCE

    # direct actions, the score reward and no discount: the policy becomes a learned search
    # distribution over configurations (the setting that learned reliably in our tests)
    env = make_env(table, tasks if len(tasks) > 1 else tasks[0], budget)
    return REINFORCE(env, seed=seed, gamma=0.0, learning_rate=1e-2, episodes_per_update=4).learn(steps)


def train_ppo(table: str, tasks: list[str], budget: int, steps: int, seed: int):
    import torch

    from agents.ppo import make_ppo

    torch.set_num_threads(1)
    kwargs = dict(task=tasks if len(tasks) > 1 else tasks[0], backend="recorded", table=table, budget=budget,
                  action_mode="direct", reward="score")
    return make_ppo(kwargs, n_envs=4, seed=seed).learn(steps)


def summarise(curves: list[list[float]]) -> dict[str, Any]:
    arr = np.asarray(curves)
    mean = arr.mean(0)
    half = 1.96 * arr.std(0, ddof=1) / math.sqrt(len(arr)) if len(arr) > 1 else np.zeros_like(mean)
    return {"mean": mean.tolist(), "ci95": half.tolist(),
            **{f"at_{k}": float(mean[k - 1]) for k in CHECKPOINTS if k <= len(mean)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="head")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--reinforce-steps", type=int, default=20000)
    parser.add_argument("--ppo-steps", type=int, default=20000)
    parser.add_argument("--no-ppo", action="store_true")
    parser.add_argument("--ray-tune", action="store_true", help="also run Ray Tune ASHA (needs legal-hpo-env[ray])")
    args = parser.parse_args()

    from agents import DefaultRecipe, PolicySearcher, RandomSearch, TPESearch
    from legal_hpo_env.backends.recorded import RecordedBackend

    backend = RecordedBackend(args.table)
    tasks = backend.tasks
    methods: dict[str, Callable[[str], Any]] = {
        "random": lambda task: RandomSearch(),
        "tpe": lambda task: TPESearch(ordered=True, n_startup_trials=5),
        "default": lambda task: DefaultRecipe(),
        "oracle": lambda task: Oracle(),
    }
    if args.ray_tune:
        from agents.ray_tune import RayTuneASHA

        methods["ray-tune-asha"] = lambda task: RayTuneASHA()
    trainers = {"reinforce": (train_reinforce, args.reinforce_steps)}
    if not args.no_ppo:
        trainers["ppo"] = (train_ppo, args.ppo_steps)
    training: dict[str, float] = {}
    policies: dict[tuple[str, str, str], Any] = {}
    for agent, (train, steps) in trainers.items():
        for task in tasks:
            for protocol, train_tasks in (("same", [task]), ("loto", [t for t in tasks if t != task])):
                start = time.perf_counter()
                policies[(agent, protocol, task)] = train(args.table, train_tasks, args.budget, steps, seed=0)
                training[f"{agent}/{protocol}/{task}"] = time.perf_counter() - start
                print(f"trained {agent} ({protocol}) for {task} in {training[f'{agent}/{protocol}/{task}']:.0f}s",
                      file=sys.stderr)
        for protocol in ("same", "loto"):
            methods[f"{agent} ({protocol}-task)"] = (
                lambda task, a=agent, p=protocol: PolicySearcher(policies[(a, p, task)], name=f"{a}-{p}",
                                                                 deterministic=False)
            )

    results: dict[str, dict[str, Any]] = {}
    finals: dict[tuple[str, int], dict[str, float]] = {}
    for task in tasks:
        land = backend.landscape(task)
        env = make_env(args.table, task, args.budget)
        results[task] = {"landscape": land.to_dict(), "methods": {}}
        for name, factory in methods.items():
            yahpo, to_median, found, test_scores = [], [], [], []
            searcher = factory(task)
            for seed in range(args.seeds):
                run = searcher.run(env, seed=1000 + seed)
                y, m, f = regret_curve(run, backend, task, land)
                yahpo.append(y)
                to_median.append(m)
                found.append(f)
                test_scores.append(run.best_test_score)
                finals.setdefault((task, seed), {})[name] = y[-1]
            results[task]["methods"][name] = {
                "regret": summarise(yahpo),
                "regret_to_median": summarise(to_median),
                "best_dev_score": summarise(found),
                "best_test_score_mean": statistics.mean(test_scores),
            }
            print(f"{task:14s} {name:24s} regret@{args.budget} "
                  f"{results[task]['methods'][name]['regret']['mean'][-1]:.3f}", file=sys.stderr)

    ranks: dict[str, list[float]] = {name: [] for name in methods}
    for scores in finals.values():
        order = sorted(scores.values())
        for name, value in scores.items():  # average rank of ties
            first = order.index(value)
            ranks[name].append(first + (order.count(value) - 1) / 2 + 1)
    mean_rank = {name: statistics.mean(r) for name, r in ranks.items()}

    write_result(f"protocol-{args.table}", {
        "command": "python -m benchmarks.protocol " + " ".join(sys.argv[1:]),
        "setup": {"table": args.table,
                  "table_metadata": {k: v for k, v in backend.metadata.items() if k != "recorded_on"},
                  "budget": args.budget, "seeds": args.seeds, "episode_seeds": f"1000..{999 + args.seeds}",
                  "trial_seeds": "drawn by the env from the recorded seeds", "action_mode": "direct",
                  "reinforce": {"steps": args.reinforce_steps, "gamma": 0.0, "learning_rate": 1e-2,
                                "episodes_per_update": 4},
                  "ppo": None if args.no_ppo else {"steps": args.ppo_steps, "n_envs": 4},
                  "training_seconds": training},
        "mean_rank_at_budget": mean_rank,
        "tasks": results,
    })
    plot(results, args)


def plot(results: dict[str, Any], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results)
    for key, label, name in (("regret", "normalised regret (best-found)/(best-worst)", "regret"),
                             ("best_dev_score", "dev score of the incumbent (mean over seeds)", "best-score")):
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), sharey=key == "regret")
        for ax, task in zip(np.atleast_1d(axes), tasks):
            for method, row in results[task]["methods"].items():
                mean, half = np.asarray(row[key]["mean"]), np.asarray(row[key]["ci95"])
                x = np.arange(1, len(mean) + 1)
                ax.plot(x, mean, label=method)
                ax.fill_between(x, mean - half, mean + half, alpha=0.15)
            ax.set_title(task)
            ax.set_xlabel("trials")
            if key == "regret":
                ax.set_yscale("symlog", linthresh=0.01)
        np.atleast_1d(axes)[0].set_ylabel(label)
        np.atleast_1d(axes)[-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(RESULTS / f"protocol-{args.table}-{name}.png", dpi=110)
        plt.close(fig)
    landscape_plot(args.table)


def landscape_plot(table: str) -> None:
    """Mean dev score over learning rate x batch size (averaged over the other dimensions)."""
    import matplotlib.pyplot as plt

    from legal_hpo_env.backends.recorded import RecordedBackend

    backend = RecordedBackend(table)
    fig, axes = plt.subplots(1, len(backend.tasks), figsize=(4.2 * len(backend.tasks), 3.4))
    for ax, task in zip(np.atleast_1d(axes), backend.tasks):
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
        image = ax.imshow(grid / np.maximum(counts, 1), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], rotation=60, fontsize=7)
        ax.set_yticks(range(len(batches)), [str(b) for b in batches])
        ax.set_title(task)
        ax.set_xlabel("learning rate")
        fig.colorbar(image, ax=ax, fraction=0.046)
    np.atleast_1d(axes)[0].set_ylabel("batch size")
    fig.suptitle(f"recorded '{table}' table: mean dev score over learning rate x batch size")
    fig.tight_layout()
    fig.savefig(RESULTS / f"landscape-{table}.png", dpi=110)


if __name__ == "__main__":
    main()
