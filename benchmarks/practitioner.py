"""What a practitioner gets: a tuned, saved model per task within a compute budget, beside two simple baselines.

For each task, live tuning for ``--time-budget`` of wall-clock time (default 30 minutes):
Optuna's TPE with Hyperband pruning over epochs (:class:`agents.budgeted.BudgetedTPE`, what
``legal-hpo tune --time-budget`` runs), on the ``head`` backend by default (frozen MiniLM
features and a trained linear head, about a second a trial on CPU). The best completed trial
by the report's rule (:data:`legal_hpo_env.tuning_report.TIE_BREAK`) is trained once more with
its seed and saved (as ``--save-model`` does), and the saved model's test headline metric is
reported beside TF-IDF + linear SVM (``C`` and class weighting chosen on dev) and the majority
class, both trained and scored on the trials' own examples (:mod:`legal_hpo_env.classical`).

    python -m benchmarks.practitioner [--tasks ...] [--time-budget 30m] [--backend head|finetune]
        [--max-train N] [--models DIR] [--output DIR] [--force]

The budget covers the search only: the encoder's feature pass (``head``, cached on disk after
the first time), the baselines and the saved model's retraining are timed apart. Trials are
kept in memory only unless ``--store`` is given; with a store, a rerun replays its trials
without training them, so its time budget buys more trials than a fresh one's.

Results go to ``benchmarks/results/practitioner.json`` (and ``practitioner.png``), written
after every task: a rerun skips the tasks already there unless ``--force`` (each task's row
holds its own backend, fidelity and budget; ``setup`` is the last invocation's). Models go to
``--models`` (default: a folder in the system's temporary directory), one folder per task.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, data_dir, write_result

NAME = "practitioner"
ENGLISH = ("unfair_tos", "overruling", "contract_nli", "scotus")
#: Two CUAD clause types whose dev scores spread well above seed noise (record-finetune-check.json).
CUAD = ("cuad_post_termination_services", "cuad_volume_restriction")
TASKS = ENGLISH + CUAD
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "legal-hpo-practitioner-models"
#: ``finetune`` caps where none is given: trials of a few minutes on 2 CPU cores, a dozen or so in 30 minutes.
FINETUNE_MAX_TRAIN = 400
FINETUNE_MAX_EVAL = 200


def model_folder(task: str, backend: str) -> str:
    """The saved model's folder name: the task (``custom:`` paths made safe) and the backend."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', task).strip('_')[-80:]}-{backend}"


def _tested(scores: dict[str, Any]) -> dict[str, Any]:
    return {name: scores[name] for name in ("score", "accuracy", "macro_f1")}


def task_record(
    run: Any,
    baselines: dict[str, Any],
    saved: dict[str, Any] | None,
    *,
    backend: str,
    fidelity: dict[str, Any],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """One task's row of the results: the search, its pick, the saved model, the baselines and the deltas.

    Args:
        run: the :class:`~agents.budgeted.BudgetedRun` of the search.
        baselines: :func:`~legal_hpo_env.classical.classical_baselines` on the trials' examples,
            or ``{"skipped": reason}``.
        saved: the retrained best configuration (``folder``, ``seed`` and its dev and test
            ``score``, ``accuracy`` and ``macro_f1``); ``None`` when no trial completed.
        backend: the backend tuned on.
        fidelity: the trials' fidelity (training cap, max length, evaluation cap).
        seconds: wall-clock seconds apart from the search (``features``, ``save``, ``baselines``, ``total``).
    """
    first = next((r for seeds in run.results for r in seeds if r is not None), None)
    best = run.best()
    tuned = None if saved is None else saved["test"]["score"]
    # the incumbent after each completed trial that improved it, against the budget spent
    incumbent, spent, top = [], 0.0, None
    for trial in run.trials:
        spent += trial["budget_seconds"]
        if not trial["pruned"] and not trial["diverged"] and (top is None or trial["dev_score"] > top):
            top = trial["dev_score"]
            incumbent.append({"seconds": spent, "trial": trial["trial"], "dev_score": top})
    record: dict[str, Any] = {
        "task": run.task,
        "metric": None if first is None else first.metric,
        "backend": backend,
        "model": None if first is None else first.model,
        "fidelity": fidelity,
        "sizes": None if first is None else first.sizes,
        "data_hash": None if first is None else first.data_hash,
        "seed": run.seed,
        **run.summary(),
        "trials": len(run.trials),
        "incumbent": incumbent,
        "best": None if best is None else {
            "trial": best["trial"], "config": best["config"], "seed": best["seed"],
            "dev_score": best["dev"]["mean"], "test_score": best["test"]["mean"], "tied_on_dev": best["tied_on_dev"],
        },
        "saved_model": saved,
        "baselines": baselines,
        "seconds": {"search": run.seconds, **seconds},
    }
    if "skipped" not in baselines and tuned is not None:
        record["delta_vs_svm"] = tuned - baselines["tfidf_svm"]["test"]["score"]
        record["delta_vs_majority"] = tuned - baselines["majority"]["test"]["score"]
    return record


def tune_task(
    task: str,
    *,
    backend: str = "head",
    time_budget: float | str = "30m",
    max_train: int | None = None,
    max_length: int = 128,
    max_eval: int | None = None,
    seed: int = 0,
    models: str | Path = DEFAULT_MODELS,
    model: str | None = None,
    device: str | None = None,
    store: str | None = None,
    max_trials: int | None = None,
    data: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Tune ``task`` live within ``time_budget``, save the pick to ``models``, and score the baselines beside it."""
    from agents.budgeted import BudgetedTPE
    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.classical import BaselineError, classical_baselines
    from legal_hpo_env.objective import Objective
    from legal_hpo_env.space import HyperParams

    start = time.perf_counter()
    fidelity = Fidelity(max_train=max_train, max_length=max_length, max_eval=max_eval)
    objective = Objective(task, backend, model=model, data_dir=data, fidelity=fidelity, store=store, device=device)
    assert objective.data is not None  # a live objective holds its task's data
    live = objective.live_backend
    features = 0.0
    if backend == "head":  # the one-off encoder pass, outside the budget (cached on disk after the first run)
        from legal_hpo_env.backends.head import encoder_features

        began = time.perf_counter()
        encoder_features(objective.data, live.model_name, fidelity.max_length, live.device)  # type: ignore[attr-defined]
        features = time.perf_counter() - began
    run = BudgetedTPE(time_budget, max_trials=max_trials, progress=progress).search(objective, seed)
    best = run.best()
    saved, save_seconds = None, 0.0
    if best is not None:
        folder = Path(models) / model_folder(objective.task_name, backend)
        began = time.perf_counter()
        result = live.evaluate(objective.data, HyperParams.from_dict(best["config"]), objective.fidelity, best["seed"],
                               progress=progress, save_to=folder)
        save_seconds = time.perf_counter() - began
        saved = {"folder": folder.name, "seed": result.seed,
                 "dev": {"score": result.dev_score, "accuracy": result.dev_accuracy, "macro_f1": result.dev_macro_f1},
                 "test": {"score": result.test_score, "accuracy": result.test_accuracy,
                          "macro_f1": result.test_macro_f1}}
    began = time.perf_counter()
    try:
        baselines: dict[str, Any] = classical_baselines(objective.data, objective.fidelity)
    except BaselineError as e:
        baselines = {"skipped": str(e)}
    baseline_seconds = time.perf_counter() - began
    return task_record(run, baselines, saved, backend=backend, fidelity=fidelity.to_dict(),
                       seconds={"features": features, "save": save_seconds, "baselines": baseline_seconds,
                                "total": time.perf_counter() - start})


def summary_line(record: dict[str, Any]) -> str:
    """One line per task: the tuned model's test score beside both baselines, and the budget used."""
    tuned = "no model" if record["saved_model"] is None else f"{record['saved_model']['test']['score']:.4f}"
    baselines = record["baselines"]
    versus = ("baselines skipped" if "skipped" in baselines else
              f"TF-IDF + SVM {baselines['tfidf_svm']['test']['score']:.4f} | majority "
              f"{baselines['majority']['test']['score']:.4f}")
    return (f"{record['task']}: test {record['metric']} tuned {tuned} ({record['backend']}) | {versus}; "
            f"{record['time_used']:.0f}s of {record['time_budget']:.0f}s, {record['trials_completed']} trials "
            f"completed, {record['trials_pruned']} pruned ({record['stop_reason']})")


def plot(rows: dict[str, dict[str, Any]], folder: Path) -> None:
    """Bars per task: majority class, TF-IDF + SVM and the tuned model, test headline metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = {t: r for t, r in rows.items() if "skipped" not in r["baselines"] and r["saved_model"] is not None}
    if not shown:
        return
    bars = {
        "majority class": [r["baselines"]["majority"]["test"]["score"] for r in shown.values()],
        "TF-IDF + linear SVM": [r["baselines"]["tfidf_svm"]["test"]["score"] for r in shown.values()],
        "tuned model": [r["saved_model"]["test"]["score"] for r in shown.values()],
    }
    x, width = np.arange(len(shown)), 0.27
    fig, ax = plt.subplots(figsize=(1.6 * len(shown) + 2, 3.6))
    for i, (label, values) in enumerate(bars.items()):
        ax.bar(x + (i - 1) * width, values, width, label=label)
    ax.set_xticks(x, [f"{t}\n({r['metric']})" for t, r in shown.items()], fontsize=7)
    ax.set_ylabel("test headline metric")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / f"{NAME}.png", dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--time-budget", default="30m", help="per task: 90s, 45m, 1.5h or seconds (default 30m)")
    parser.add_argument("--backend", choices=("head", "finetune"), default="head")
    parser.add_argument("--max-train", type=int,
                        help=f"cap on training examples (default: all for head, {FINETUNE_MAX_TRAIN} for finetune)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-eval", type=int,
                        help=f"cap on dev and on test examples (default: none for head, {FINETUNE_MAX_EVAL} for "
                             "finetune)")
    parser.add_argument("--max-trials", type=int, help="cap on trials per task (default: as many as the budget allows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="encoder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--store", help="trial store (default: none; a stored trial costs a rerun no time)")
    parser.add_argument("--models", default=str(DEFAULT_MODELS),
                        help=f"where the models are saved, one folder per task (default {DEFAULT_MODELS})")
    parser.add_argument("--output", help=f"results folder (default {RESULTS})")
    parser.add_argument("--force", action="store_true", help="tune again the tasks already in the results")
    args = parser.parse_args(argv)

    from agents.budgeted import parse_duration

    budget = parse_duration(args.time_budget, "--time-budget")  # refused before any task
    if args.backend == "finetune":
        args.max_train = FINETUNE_MAX_TRAIN if args.max_train is None else args.max_train
        args.max_eval = FINETUNE_MAX_EVAL if args.max_eval is None else args.max_eval
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    folder = RESULTS if args.output is None else Path(args.output)
    path = folder / f"{NAME}.json"
    rows: dict[str, dict[str, Any]] = json.loads(path.read_text())["tasks"] if path.is_file() else {}
    payload: dict[str, Any] = {
        "command": "python -m benchmarks.practitioner " + " ".join(sys.argv[1:] if argv is None else argv),
        "setup": {"tasks": args.tasks, "time_budget": budget, "backend": args.backend, "max_train": args.max_train,
                  "max_length": args.max_length, "max_eval": args.max_eval, "max_trials": args.max_trials,
                  "seed": args.seed, "threads": args.threads,
                  "model": args.model or "sentence-transformers/all-MiniLM-L6-v2",
                  "models_dir": str(Path(args.models).resolve()), "searcher": "BudgetedTPE (hyperband over epochs)"},
        "tasks": rows,
    }
    for task in args.tasks:
        if task in rows and not args.force:
            print(f"{task}: already in {path}, skipped (--force tunes it again)", file=sys.stderr)
            continue
        rows[task] = tune_task(task, backend=args.backend, time_budget=budget, max_train=args.max_train,
                               max_length=args.max_length, max_eval=args.max_eval, seed=args.seed, models=args.models,
                               model=args.model, device=args.device, store=args.store, max_trials=args.max_trials,
                               data=data_dir())
        print(summary_line(rows[task]), file=sys.stderr)
        write_result(NAME, payload, folder)  # after every task: an interrupted run keeps the tasks it finished
    plot(rows, folder)


if __name__ == "__main__":
    main()
