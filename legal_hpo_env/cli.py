"""``legal-hpo``: list tasks, evaluate one configuration, tune, save and use the tuned model, train an agent."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from legal_hpo_env.jsonable import finite_json
from legal_hpo_env.space import SPACE, HyperParamError, HyperParams
from legal_hpo_env.tuning_report import TIE_BREAK

__all__ = ["main"]

#: The agents that learn (trained by agents/training.py); the others are baselines.
LEARNED = ("reinforce", "ppo", "recurrent-ppo")
AGENTS = (*LEARNED, "random", "tpe", "default")


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="recorded", choices=("recorded", "head", "finetune"),
                   help="recorded: replay the packaged table (instant, offline; default); head/finetune: train live")
    p.add_argument("--table", default="head", help="which recorded table (default: head)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder with the legal data (default: $LEGAL_HPO_DATA)")
    p.add_argument("--model", help="Hugging Face model id or local folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--max-train", type=int, help="cap on training examples (fidelity)")
    p.add_argument("--max-length", type=int, help="tokens per input (default 128)")
    p.add_argument("--store", help="trial store file (SQLite); finished trials are reused from it")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def _add_ray_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run each live trial as a Ray task: on the cluster at ADDRESS (host:port), else at "
                        "$RAY_ADDRESS, else on a local Ray instance (needs pip install 'legal-hpo-env[ray]')")
    p.add_argument("--trial-cpus", type=float, default=1.0, help="CPUs reserved per remote trial (default 1)")
    p.add_argument("--trial-gpus", type=float, default=0.0,
                   help="GPUs reserved per remote trial (default 0; a fraction such as 0.25 shares a GPU)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legal-hpo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list tasks, their sizes and whether their data was found")
    tasks.add_argument("--data-dir", help="folder with the legal data (default: $LEGAL_HPO_DATA)")
    tasks.add_argument("--task", help="show one task in detail: its labels (with counts) and split sizes; "
                                      "custom:FILE included")

    ev = sub.add_parser("evaluate", help="run one trial and print its result as JSON")
    ev.add_argument("--task", required=True)
    ev.add_argument("--backend", default="head", choices=("head", "finetune"))
    ev.add_argument("--seed", type=int, default=0)
    _add_data_args(ev)
    _add_ray_args(ev)
    for dim in SPACE.dimensions:
        kind = str if dim.categorical else (int if dim.name in ("batch_size", "epochs") else float)
        ev.add_argument(f"--{dim.name.replace('_', '-')}", type=kind, help=f"{dim.help} (grid {list(dim.grid)})")
    ev.add_argument("--off-grid", action="store_true",
                    help="evaluate values off the search grid as given (otherwise they are refused)")
    ev.add_argument("--output", help="also write the JSON result to this file")

    tune = sub.add_parser(
        "tune", help="tune a task with an agent or baseline and report the best configuration",
        description="Tune a task with an agent or baseline. The JSON report holds every trial (configuration, seed, "
                    "dev and test accuracy, macro-F1 and headline score, train loss, seconds, from_store), the split "
                    "sizes and data hash, and classical baselines (TF-IDF + linear SVM, majority class) on the same "
                    f"split. Best configuration: {TIE_BREAK}. With --time-budget the search is Optuna's TPE with "
                    "Hyperband pruning over epochs (each trial reports its dev score after every epoch); it starts "
                    "trials while the time left exceeds a trial's expected cost, and picks among the trials that "
                    "were not pruned (pruned ones are reported with the epoch they stopped at, never stored).",
    )
    tune.add_argument("--agent", choices=AGENTS,
                      help="who tunes (default random; with --time-budget only tpe, which is what it runs)")
    tune.add_argument("--policy", help="a policy saved by `legal-hpo train-agent` (reinforce/ppo)")
    tune.add_argument("--task", default="unfair_tos")
    _add_backend_args(tune)
    tune.add_argument("--budget", type=int,
                      help="trials (default 20); with --time-budget, the most trials (default: as many as fit)")
    tune.add_argument("--time-budget", metavar="DURATION",
                      help="tune for this long (90s, 45m, 1.5h or plain seconds) with TPE and Hyperband pruning over "
                           "epochs; the recorded backend spends its table's recorded seconds instead of real time")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--train-steps", type=int,
                      help="train a fresh reinforce/ppo tuner for this many env steps on the recorded table's other "
                           "tasks (never on the task it tunes) instead of playing the shipped one")
    tune.add_argument("--action-mode", choices=("direct", "delta"), default="direct",
                      help="how a reinforce/ppo tuner acts: choose whole configurations (direct) or raise/lower "
                           "hyperparameters (delta); baselines always choose whole configurations")
    tune.add_argument("--report", help="JSON report file (default: legal-hpo-report-<task>-<agent>.json)")
    tune.add_argument("--trial-seeds", type=int, default=1, metavar="N",
                      help="train every trial with N seeds (the env's and N-1 more; default 1) and pick the best "
                           "configuration on the mean dev score over them; the report gives the mean, std, min and "
                           "max of dev and test over seeds. N times the training")
    tune.add_argument("--no-baselines", action="store_true",
                      help="skip the TF-IDF + linear SVM and majority-class baselines of the report")
    tune.add_argument("--save-model", metavar="DIR",
                      help="train the best configuration once more (its seed) and save the model to DIR "
                           "(live backends: head, finetune); `legal-hpo predict --model DIR` uses it")
    _add_data_args(tune)
    _add_ray_args(tune)

    pred = sub.add_parser("predict", help="predict labels (and class probabilities) with a saved model")
    pred.add_argument("--model", required=True, help="a folder saved by `legal-hpo tune --save-model`")
    pred.add_argument("--input", required=True, help="CSV, TSV or JSONL with a `text` column (optional `text_pair`)")
    pred.add_argument("--output", help="where to write the predictions (.csv or .jsonl; default: print JSON lines)")
    pred.add_argument("--batch-size", type=int, default=64)

    train = sub.add_parser("train-agent", help="train an RL policy on the env and save it for `tune --policy`")
    train.add_argument("--agent", choices=LEARNED, default="reinforce",
                       help="reinforce (hand-written), ppo (stable-baselines3) or recurrent-ppo (sb3-contrib, LSTM)")
    train.add_argument("--task", nargs="+", default=["suite:train"],
                       help="one or more tasks or task sets, sampled per episode (default: suite:train)")
    _add_backend_args(train)
    train.add_argument("--budget", type=int, default=20)
    train.add_argument("--steps", type=int, default=10000, help="env steps of training (each is a trial)")
    train.add_argument("--action-mode", choices=("direct", "delta"), default="direct",
                       help="direct: choose whole configurations; delta: raise/lower hyperparameters (default direct)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", required=True, help="where to save the policy")
    train.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard logs (tuning/*) to DIR")
    _add_data_args(train)
    _add_ray_args(train)
    return parser


def _check_agents() -> None:
    """Refuse another installed package named ``agents`` that shadows this project's."""
    import agents

    if getattr(agents, "DISTRIBUTION", None) != "legal-hpo-env":
        raise ImportError(
            f"the package 'agents' imported from {getattr(agents, '__file__', None) or list(agents.__path__)} is not "
            "legal-hpo-env's: another installed package named 'agents' shadows it. Uninstall that one, or put "
            "legal-hpo-env first on sys.path."
        )


def _cmd_task_detail(args: argparse.Namespace) -> int:
    from collections import Counter

    from legal_hpo_env.tasks import load_task

    data = load_task(args.task, args.data_dir)
    print(f"{data.name}: {data.spec.description}")
    print(f"family {data.spec.family}, metric {data.spec.metric}, licence {data.spec.licence}, "
          f"data hash {data.data_hash}")
    sizes = data.sizes()
    print("split sizes: " + ", ".join(f"{split} {n}" for split, n in sizes.items()))
    width = max(len(name) for name in data.label_names)
    print(f"{'label':<{width}}  {'train':>6} {'dev':>5} {'test':>5}")
    counts = {split: Counter(ex.label for ex in getattr(data, split)) for split in sizes}
    for i, name in enumerate(data.label_names):
        print(f"{name:<{width}}  {counts['train'][i]:>6} {counts['dev'][i]:>5} {counts['test'][i]:>5}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from legal_hpo_env.tasks import TASKS, DataError, load_task

    if args.task:
        return _cmd_task_detail(args)

    rows = []
    for name, spec in TASKS.items():
        row: dict[str, Any] = {"task": name, "family": spec.family, "metric": spec.metric, "language": spec.language,
               "licence": spec.licence}
        try:
            data = load_task(name, args.data_dir)
            row.update(found=True, **data.sizes(), labels=data.num_labels)
        except DataError as e:
            row.update(found=False, reason=str(e))
        rows.append(row)
    width = max(len(r["task"]) for r in rows)
    print(f"{'task':<{width}}  {'family':<16} {'metric':<9} {'train':>6} {'dev':>5} {'test':>5} {'labels':>6}  data")
    for r in rows:
        sizes = (f"{r['train']:>6} {r['dev']:>5} {r['test']:>5} {r['labels']:>6}" if r["found"]
                 else f"{'-':>6} {'-':>5} {'-':>5} {'-':>6}")
        print(f"{r['task']:<{width}}  {r['family']:<16} {r['metric']:<9} {sizes}  "
              f"{'found' if r['found'] else 'missing'}")
    from legal_hpo_env.tasks import TASK_SETS

    print("\ntask sets (task=...): " + ", ".join(f"{name} ({len(tasks)})" for name, tasks in TASK_SETS.items()))
    missing = [r for r in rows if not r["found"]]
    if missing:
        print(f"\n{missing[0]['reason']}", file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    overrides = {d.name: getattr(args, d.name) for d in SPACE.dimensions if getattr(args, d.name) is not None}
    if args.backend == "head" and "learning_rate" not in overrides:
        # the recipe's 3e-5 barely moves a linear head in a few epochs; 3e-3 is where it learns
        overrides["learning_rate"] = HEAD_LEARNING_RATE
    config = HyperParams.from_dict(overrides)
    off = [(name, value) for name, value in overrides.items() if value not in SPACE[name].grid]
    if off and not args.off_grid:
        name, value = off[0]
        grid = SPACE[name].grid
        near = sorted(grid, key=lambda v: abs(math.log(v / value)) if SPACE[name].log else abs(v - value))[:2]
        raise ValueError(
            f"--{name.replace('_', '-')} {value:g} is off the search grid {list(grid)} that agents and tables use: "
            f"choose one of it (nearest: {', '.join(f'{v:g}' for v in sorted(near))}), or add --off-grid to "
            "evaluate it as given."
        )
    ray = _ray_options(args)
    executor = None
    if ray is not None:
        from legal_hpo_env.distributed import RayExecutor

        executor = RayExecutor(ray)
    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.objective import Objective

    fidelity = Fidelity(max_train=args.max_train, max_length=128 if args.max_length is None else args.max_length)
    objective = Objective(args.task, args.backend, model=args.model, data_dir=args.data_dir, store=args.store,
                          device=args.device, fidelity=fidelity, executor=executor)
    result = objective(config, args.seed, progress=True)
    text = json.dumps(finite_json({**result.to_dict(), "from_store": result.from_store}), indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    if "failed" in result.extra:  # a remote trial whose worker died
        print(f"legal-hpo evaluate: the trial failed: {result.extra['failed']}", file=sys.stderr)
        return 1
    return 0


def _ray_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The Ray options of ``--ray``/``--trial-cpus``/``--trial-gpus`` (``None`` without ``--ray``)."""
    if args.ray is None:
        if (args.trial_cpus, args.trial_gpus) != (1.0, 0.0):
            raise ValueError("--trial-cpus and --trial-gpus reserve resources of remote trials: add --ray [ADDRESS].")
        return None
    if getattr(args, "backend", None) == "recorded":
        raise ValueError("--ray runs live trials on Ray workers: use --backend head or finetune "
                         "(a recorded table replays in microseconds).")
    return {"address": args.ray or None, "trial_cpus": args.trial_cpus, "trial_gpus": args.trial_gpus}


def _env_kwargs(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    """The env's keyword arguments for an agent of the CLI.

    Baselines play ``direct`` actions (they choose whole configurations); a learned tuner
    plays the env of the package's training recipe (:mod:`agents.training`) in its
    ``--action-mode``.
    """
    plain = _plain_env_kwargs(args, task)
    if args.agent not in LEARNED:
        return plain
    from agents.training import tuner_env_kwargs

    del plain["task"], plain["action_mode"]
    return tuner_env_kwargs(task, getattr(args, "action_mode", "direct"), **plain)


def _plain_env_kwargs(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    kwargs = {"task": task, "backend": args.backend, "budget": args.budget, "action_mode": "direct"}
    ray = _ray_options(args)
    if args.backend == "recorded":
        live = {"model": args.model, "data_dir": args.data_dir, "max_train": args.max_train,
                "max_length": args.max_length, "store": args.store, "device": args.device}
        # passed on only when given, so that the env names what a replayed table cannot honour
        return {**kwargs, "table": args.table, **{k: v for k, v in live.items() if v is not None}}
    return {**kwargs, "model": args.model, "data_dir": args.data_dir, "max_train": args.max_train,
            "max_length": args.max_length, "store": args.store, "device": args.device, "ray": ray}


#: ``evaluate --backend head``'s learning rate when none is given.
HEAD_LEARNING_RATE = 3e-3



def _cmd_tune(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import legal_hpo_env  # noqa: F401  (registers the env)
    from legal_hpo_env.tuning_report import best_summary, pick_best

    start = time.perf_counter()
    time_budget = _tune_budget(args)
    path = Path(args.report or f"legal-hpo-report-{args.task.replace('/', '_').replace(':', '_')}-{args.agent}.json")
    _check_writable(path, "--report")  # before any trial, not after all of them
    if args.save_model and args.backend == "recorded":
        raise ValueError("--save-model trains the best configuration: tune with --backend head or finetune "
                         "(a recorded table holds scores, not models).")
    if args.trial_seeds < 1:
        raise ValueError(f"--trial-seeds {args.trial_seeds}: give the number of training seeds per trial, 1 or more.")
    # the env's trial budget is unused under a time budget (its objective, grid and seeds are)
    env_args = argparse.Namespace(**{**vars(args), "budget": args.budget or 1})
    env = gym.make("LegalHPO-v0", **_env_kwargs(env_args, args.task))
    if args.backend == "recorded" and args.trial_seeds > env.unwrapped.trial_seeds:  # type: ignore[attr-defined]
        # replaying, the env draws each trial's seed from every recorded seed
        raise ValueError(f"--trial-seeds {args.trial_seeds}: the {args.table!r} table holds "
                         f"{env.unwrapped.trial_seeds} seeds per configuration; "  # type: ignore[attr-defined]
                         "ask for at most that many, or train live with --backend head.")
    if time_budget is None:
        trials, report = _play_episode(args, env)
    else:
        trials, report = _budgeted_search(args, env, time_budget)
    objective = env.unwrapped.view.objective  # type: ignore[attr-defined]
    index = pick_best(trials, report.get("sizes", {}).get("train", 1))  # never a pruned trial
    if index is not None:  # the report's pick (its rule breaks ties), which --save-model trains again
        best = best_summary(trials, index)
        report.update(best_config=best["config"], best_score=best["dev"]["mean"],
                      best_test_score=best["test"]["mean"], best_seed=best["seed"], best=best)
        view = env.unwrapped.view  # type: ignore[attr-defined]
        if view.landscape is not None:  # the pick's regret, on its mean over recorded seeds as the env scores it
            expected = view.mean_score(HyperParams.from_dict(best["config"]))
            report.update(regret=view.landscape.regret(expected),
                          regret_to_median=view.landscape.regret_to_median(expected))
    report["trials"] = trials
    report["baselines"] = {"skipped": "--no-baselines"} if args.no_baselines else _baselines(args, objective)
    if time_budget is not None:
        print(_budget_line(report))
    print(f"best configuration ({args.agent}, {len(trials)} trials on {args.task}):")
    print(json.dumps(report["best_config"], indent=2))
    regret = "" if report["regret"] is None else f"  normalised regret {report['regret']:.4f}"
    over = f" (mean of {args.trial_seeds} seeds)" if args.trial_seeds > 1 else ""
    print(f"dev {report['best_score']:.4f}  test {report['best_test_score']:.4f}{over}{regret}  report: {path}")
    print(_comparison(report))
    if args.save_model:
        if report["best_config"] is None:
            raise ValueError("every trial diverged (or, under --time-budget, was pruned): there is no model to save.")
        result = objective.live_backend.evaluate(
            objective.data, HyperParams.from_dict(report["best_config"]), objective.fidelity, report["best_seed"] or 0,
            progress=True, save_to=args.save_model,
        )
        report["saved_model"] = {"folder": str(Path(args.save_model).resolve()), "dev_score": result.dev_score,
                                 "test_score": result.test_score, "seed": result.seed}
        print(f"saved the model (dev {result.dev_score:.4f}, test {result.test_score:.4f}) to {args.save_model}")
    report["wall_seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(finite_json(report), indent=2) + "\n", encoding="utf-8")
    return 0


def _tune_budget(args: argparse.Namespace) -> float | None:
    """``--time-budget`` in seconds (``None`` without it), with ``--agent`` and ``--budget`` resolved for it.

    Refuses what a budgeted search cannot honour, before any trial.
    """
    if args.budget is not None and args.budget < 1:
        raise ValueError(f"--budget {args.budget}: give the number of trials, 1 or more.")
    if args.time_budget is None:
        args.agent = args.agent or "random"
        args.budget = args.budget or 20
        return None
    from agents.budgeted import parse_duration

    seconds = parse_duration(args.time_budget, "--time-budget")
    if args.agent not in (None, "tpe"):
        raise ValueError(f"--time-budget runs TPE with Hyperband pruning over epochs: drop --agent {args.agent} "
                         "(or tune a fixed number of trials with --budget instead).")
    if args.ray is not None:
        raise ValueError("--time-budget prunes trials between their epochs, which needs them trained in this "
                         "process: drop --ray.")
    args.agent = "budgeted-tpe"
    return seconds


def _play_episode(args: argparse.Namespace, env: gym.Env) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``--budget`` trials of the agent, one env episode: the trials' records and the report so far."""
    from legal_hpo_env.tuning_report import TrialRecorder

    if args.agent in ("random", "tpe", "default"):
        from agents import make_searcher

        searcher = make_searcher(args.agent)
    else:
        from agents import PolicySearcher

        searcher = PolicySearcher(_load_or_train(args, env), name=args.agent, deterministic=False)
    from tqdm.auto import tqdm

    recorder = TrialRecorder(env, args.trial_seeds)
    tracked = _ProgressWrapper(recorder, tqdm(total=args.budget, desc=f"tuning {args.task}", file=sys.stderr))
    run = searcher.run(tracked, seed=args.seed)
    final = tracked.last_info
    report = {**run.to_dict(), "agent": args.agent, "backend": args.backend, "budget": args.budget,
              "regret": final.get("regret"), "regret_to_median": final.get("regret_to_median"),
              "trial_seeds": args.trial_seeds, **_split_facts(recorder.results)}
    return recorder.trials, report


def _budgeted_search(
    args: argparse.Namespace, env: gym.Env, time_budget: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """TPE with Hyperband pruning until ``time_budget`` is spent: the trials' records and the report so far."""
    from agents.budgeted import BudgetedTPE

    env.reset(seed=args.seed)
    base: Any = env.unwrapped
    searcher = BudgetedTPE(time_budget, max_trials=args.budget, trial_seeds=args.trial_seeds, progress=True)
    run = searcher.search(base.view.objective, args.seed, space=base.view.space, seed_pool=base.trial_seeds)
    report = {**run.tuning_run().to_dict(), "agent": args.agent, "backend": args.backend, "budget": args.budget,
              **run.summary(), "regret": None, "regret_to_median": None, "trial_seeds": args.trial_seeds,
              **_split_facts(run.results)}
    return run.trials, report


def _budget_line(report: dict[str, Any]) -> str:
    """One line: the time budget, the time it used, and the trials completed and pruned."""
    clock = " of recorded training" if report["clock"] == "recorded" else ""
    return (f"time budget {report['time_budget']:.0f}s: used {report['time_used']:.0f}s{clock}, "
            f"{report['trials_completed']} trials completed, {report['trials_pruned']} pruned "
            f"(stopped: {report['stop_reason']})")


def _split_facts(results: list[list[Any]]) -> dict[str, Any]:
    """The metric, fidelity, split sizes and data hash every trial of the run shared (from its first result)."""
    first = next((r for seeds in results for r in seeds if r is not None), None)
    if first is None:  # no trial left a result (every one failed remotely)
        return {}
    return {"metric": first.metric, "fidelity": first.fidelity, "sizes": first.sizes, "data_hash": first.data_hash}


def _baselines(args: argparse.Namespace, objective: Any) -> dict[str, Any]:
    """TF-IDF + linear SVM and the majority class on the split the trials used (or why they were skipped)."""
    from legal_hpo_env.classical import BaselineError, classical_baselines
    from legal_hpo_env.tasks import DataError, load_task

    if not objective.replays:
        data, fidelity = objective.data, objective.fidelity
    else:  # a table holds scores, not examples: the same data, if it is here, gives the same split
        table = objective.replay_backend
        if table.fidelity is None:
            return {"skipped": f"the {args.table!r} table's runs differ in fidelity: no one split to train on."}
        try:
            data = load_task(args.task)  # $LEGAL_HPO_DATA: a replaying env refuses --data-dir
        except DataError as e:
            return {"skipped": f"the {args.table!r} table holds scores, not data, and the data was not found ({e})"}
        recorded = table.runs(objective.task_name, table.configurations(objective.task_name)[0])[0].data_hash
        if data.data_hash != recorded:
            return {"skipped": f"the data found (hash {data.data_hash}) is not the data the {args.table!r} table was "
                               f"recorded on (hash {recorded})"}
        fidelity = table.fidelity
    try:
        return classical_baselines(data, fidelity)
    except BaselineError as e:
        print(f"legal-hpo tune: no baselines: {e}", file=sys.stderr)
        return {"skipped": str(e)}


def _comparison(report: dict[str, Any]) -> str:
    """One line: the tuned model's test headline metric beside the baselines'."""
    baselines = report["baselines"]
    if "skipped" in baselines:
        return f"baselines skipped: {baselines['skipped']}"
    svm, majority = baselines["tfidf_svm"], baselines["majority"]
    setting = svm["settings"]
    chosen = f" (C={setting['C']:g}, {setting['class_weighting']})" if "C" in setting else ""
    return (f"test {baselines['metric']}: tuned {report['best_test_score']:.4f} | TF-IDF + linear SVM "
            f"{svm['test']['score']:.4f}{chosen} | majority class {majority['test']['score']:.4f}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from legal_hpo_env.model import TunedModel
    from legal_hpo_env.tasks.readers import read_table

    model = TunedModel.load(args.model)
    if args.output:
        _check_writable(Path(args.output), "--output")
    rows = read_table(Path(args.input), columns=("text",), optional=("text_pair",))
    texts = [str(r["text"]) for r in rows]
    pairs = [str(r["text_pair"]) if r.get("text_pair") else None for r in rows]
    predictions = model.predict(texts, pairs, batch_size=args.batch_size, progress=True)
    if args.output and args.output.endswith(".csv"):
        import csv

        with open(args.output, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["label", *(f"p_{name}" for name in model.label_names)])
            for p in predictions:
                writer.writerow([p["label"], *(f"{p['probabilities'][name]:.6f}" for name in model.label_names)])
    else:
        lines = "".join(json.dumps(p) + "\n" for p in predictions)
        if args.output:
            Path(args.output).write_text(lines, encoding="utf-8")
        else:
            sys.stdout.write(lines)
    if args.output:
        print(f"wrote {len(predictions)} predictions to {args.output}", file=sys.stderr)
    return 0


def _check_writable(path: Path, flag: str) -> None:
    """Refuse an output path whose folder is missing or read-only, naming the flag."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: the folder {folder} does not exist; create it or choose another path.")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file path.")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder {folder} is not writable; choose another path.")


def _held_out_training_tasks(args: argparse.Namespace) -> list[str]:
    """Return the tasks an RL agent trains on before tuning ``args.task``.

    Every other task of the recorded table: the agent never trains on the task it then tunes.
    """
    if args.backend != "recorded":
        raise ValueError(
            f"--agent {args.agent} without --policy would train on the task it tunes, with live trials: train a "
            "policy on other tasks first (`legal-hpo train-agent --backend recorded --task ...`), then pass --policy."
        )
    from legal_hpo_env.backends.recorded import RecordedBackend

    others = [t for t in RecordedBackend(args.table).tasks if t != args.task]
    if not others:
        raise ValueError(f"the {args.table!r} table holds no task but {args.task!r} to train on: pass --policy.")
    print(f"training {args.agent} for {args.train_steps} steps on {others} (held out: {args.task})", file=sys.stderr)
    return others


def _load_or_train(args: argparse.Namespace, env: Any) -> Any:
    """The tuner ``tune`` plays: ``--policy``, a fresh one (``--train-steps``), or the shipped one."""
    from agents.base import PolicyFileError

    if args.train_steps is not None:
        from agents.training import train_tuner

        if args.policy:
            raise ValueError("--policy plays a trained tuner and --train-steps trains a new one: give one of them.")
        training = _env_kwargs(args, _held_out_training_tasks(args))
        return train_tuner(args.agent, training, args.train_steps, args.seed, progress=True)
    if not args.policy:
        from agents.pretrained import load_pretrained, manifest

        entry = manifest().get(f"{args.agent}-{args.action_mode}", {})
        trained_on = _expand(entry.get("tasks", []))
        if args.task in trained_on:
            print(f"note: the shipped {args.agent} policy was trained on {args.task} ({entry['tasks']}); "
                  "its result there is not a held-out one", file=sys.stderr)
        return load_pretrained(args.agent, args.action_mode, env=env, env_kwargs=_env_kwargs(args, args.task))
    try:
        if args.agent == "reinforce":
            from agents.reinforce import REINFORCE

            return REINFORCE.load(args.policy, env=env)
        from agents.ppo import load_ppo  # reads weights only: a policy file never runs code

        return load_ppo(args.policy, _env_kwargs(args, args.task), n_envs=1, seed=args.seed)
    except PolicyFileError as e:
        raise PolicyFileError(f"{e} (policies play the --action-mode they were trained with: "
                              f"this env has --action-mode {args.action_mode})") from e


def _expand(tasks: str | list[str]) -> list[str]:
    from legal_hpo_env.tasks.suite import expand_tasks

    return expand_tasks([tasks] if isinstance(tasks, str) else list(tasks))


def _cmd_train_agent(args: argparse.Namespace) -> int:
    """Train a tuner by the package's recipe (agents/training.py), with a progress bar, and save it."""
    from agents.training import train_tuner

    _check_writable(Path(args.output), "--output")  # before training, not after it
    task = args.task if len(args.task) > 1 else args.task[0]
    kwargs = _env_kwargs(args, task)
    agent = train_tuner(args.agent, kwargs, args.steps, args.seed, tensorboard=args.tensorboard, progress=True)
    agent.save(args.output)
    print(f"saved {args.agent} policy ({args.action_mode} actions) trained for {args.steps} steps on {task} "
          f"to {args.output}")
    return 0


class _ProgressWrapper(gym.Wrapper):
    """Advances a progress bar on every trial and keeps the last info."""

    def __init__(self, env: gym.Env, bar: Any) -> None:
        super().__init__(env)
        self._bar = bar
        self.last_info: dict[str, Any] = {}

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.last_info = out[4]
        self._bar.update(1)
        if out[2] or out[3]:
            self._bar.close()
        return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from legal_hpo_env.backends import UnknownBackendError
    from legal_hpo_env.backends.models import ModelLoadError
    from legal_hpo_env.store import StoreError
    from legal_hpo_env.tasks import DataError, UnknownTaskError

    handlers = {"tasks": _cmd_tasks, "evaluate": _cmd_evaluate, "tune": _cmd_tune, "train-agent": _cmd_train_agent,
                "predict": _cmd_predict}
    try:
        if args.command in ("tune", "train-agent"):
            _check_agents()
        return handlers[args.command](args)
    except (DataError, UnknownTaskError, HyperParamError, ModelLoadError, StoreError, UnknownBackendError, ValueError,
            ConnectionError) as e:
        print(f"legal-hpo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"legal-hpo {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
