"""How well the cheap head landscape predicts the fine-tuning landscape, task by task.

The ``head`` table trains a linear head on a frozen encoder; the ``finetune`` table trains
every weight. Their grids share almost no configuration (the head's learning rates run to
1, fine-tuning's to 5e-4), so the head is recorded once more on the finetune table's very
grid, data subsets and seeds (``GRIDS["head-finetune-grid"]`` in benchmarks/record.py: a
few minutes, resumable, committed with the other recordings): then the two landscapes
differ in the training alone. Per task of the finetune table it reports

* Spearman's rank correlation of the two mean dev scores over the shared grid points (each
  configuration at every epochs the curves give);
* where each one's optimum lies, and the head table's own optimum on its wide grid;
* the normalised regret on fine-tuning of the head's best configuration: what a tuner
  that trusted the proxy would lose.

    python -m benchmarks.fidelities [--finetune-store PATH]

Without a packaged ``finetune`` table (mid-recording) it reads the finetune runs stored so
far (``--finetune-store``, default the recorder's store) and says how many it found.
Writes benchmarks/results/fidelities.json and fidelities.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import record
from benchmarks.common import RESULTS, write_result


def stored_table(fidelity: str, store: str, folder: Path):
    """A replay backend of the grid's runs found in ``store`` (complete or not), by the packaged tables' rules."""
    from legal_hpo_env.backends.recorded import RecordedBackend, write_table

    spec = record.GRIDS[fidelity]
    runs = list(record.grid_results(fidelity, spec["tasks"], store).values())
    if not runs:
        raise SystemExit(f"no {fidelity} runs in {store}: record some first (python -m benchmarks.record "
                         f"--fidelity {fidelity}).")
    metadata = {"fidelity": fidelity, "code_version": runs[0].code_version}
    path = write_table(runs, metadata, folder / f"{fidelity}.json.gz", version=1)
    return RecordedBackend(path=path), len(runs), len(record.jobs(spec, spec["tasks"], None))


def grid_points(backend, task: str) -> dict[tuple, Any]:
    """Each recorded configuration (at each epochs), by its sorted items; a recording may miss some."""
    from legal_hpo_env.backends.table import MissingTrialError

    found = {}
    for config in backend.space(task).grid_points():
        try:
            backend.runs(task, config)
        except MissingTrialError:
            continue
        found[tuple(sorted(config.to_dict().items()))] = config
    return found


def compare(head, finetune, table, task: str) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from benchmarks.protocol import optimum

    recorded = grid_points(finetune, task)
    configs = [recorded[k] for k in sorted(set(grid_points(head, task)) & set(recorded))]
    h = np.array([head.mean_score(task, c) for c in configs])
    f = np.array([finetune.mean_score(task, c) for c in configs])
    rho, p = spearmanr(h, f)
    trusted = configs[int(np.argmax(h))]
    lo, hi = f.min(), f.max()
    return {
        "shared_points": len(configs),
        "spearman": float(rho), "p_value": float(p),
        "finetune_optimum": optimum(finetune, task, list(recorded.values())),
        "head_optimum_on_finetune_grid": optimum(head, task, configs),
        "head_table_optimum": optimum(table, task) if task in table.tasks else None,
        "regret_of_trusting_the_head": float((hi - finetune.mean_score(task, trusted)) / max(hi - lo, 1e-12)),
        "by_learning_rate": {
            name: {f"{lr:g}": max(b.mean_score(task, c) for c in points.values() if c.learning_rate == lr)
                   for lr in sorted({c.learning_rate for c in points.values()})}
            for name, b in (("finetune", finetune), ("head_on_finetune_grid", head), ("head_table", table))
            if task in b.tasks and (points := grid_points(b, task))
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finetune-store", default=str(RESULTS / "record-finetune.sqlite"),
                        help="where the finetune runs are, when no finetune table is packaged yet")
    parser.add_argument("--head-table", default="head")
    args = parser.parse_args(argv)

    from legal_hpo_env.backends.recorded import RecordedBackend, available_tables

    store = str(RESULTS / "record-head-finetune-grid.sqlite")
    record.record("head-finetune-grid", record.GRIDS["head-finetune-grid"]["tasks"], store, workers=1, sample=None)
    table = RecordedBackend(args.head_table)
    with tempfile.TemporaryDirectory() as scratch:
        head, head_runs, planned = stored_table("head-finetune-grid", store, Path(scratch))
        if "finetune" in available_tables():
            finetune = RecordedBackend("finetune")
            source = f"packaged table finetune v{finetune.metadata['version']}"
            complete = True  # a table is exported only when its grid is complete
        else:
            finetune, finetune_runs, finetune_planned = stored_table("finetune", args.finetune_store, Path(scratch))
            complete = finetune_runs == finetune_planned
            source = f"{finetune_runs} of {finetune_planned} runs recorded so far"
        print(f"finetune: {source}", file=sys.stderr)
        tasks = {t: compare(head, finetune, table, t) for t in finetune.tasks}
    for task, row in tasks.items():
        print(f"{task:34s} spearman {row['spearman']:+.2f} over {row['shared_points']} points; regret of trusting "
              f"the head {row['regret_of_trusting_the_head']:.2f}", file=sys.stderr)
    write_result("fidelities", {
        "command": "python -m benchmarks.fidelities " + " ".join(sys.argv[1:] if argv is None else argv),
        "finetune": source,
        "complete": complete,
        "head_on_finetune_grid": {"runs": head_runs, "planned": planned,
                                  "spec": {k: v for k, v in record.GRIDS["head-finetune-grid"].items()
                                           if k != "candidates"}},
        "head_table": f"{args.head_table} v{table.metadata['version']}",
        "mean_spearman": float(np.mean([r["spearman"] for r in tasks.values()])),
        "tasks": tasks,
    })
    plot(tasks)


def plot(tasks: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.2), squeeze=False, sharey=True)
    for ax, (task, row) in zip(axes[0], tasks.items()):
        for name, curve in row["by_learning_rate"].items():
            lrs = [float(lr) for lr in curve]
            ax.plot(lrs, list(curve.values()), "o-", ms=3, label=name.replace("_", " "))
        ax.set_xscale("log")
        ax.set_title(f"{task}\nSpearman {row['spearman']:+.2f}", fontsize=8)
        ax.set_xlabel("learning rate")
    axes[0][0].set_ylabel("best mean dev score at that rate")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "fidelities.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
