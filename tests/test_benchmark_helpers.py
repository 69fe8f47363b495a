"""The helpers of the fidelity comparison and of the live-transfer benchmark, on data made up for them."""

from __future__ import annotations

import csv
import dataclasses

import pytest

pytest.importorskip("scipy")

from benchmarks import fidelities, live_transfer  # noqa: E402
from legal_hpo_env.backends.table import TableBackend  # noqa: E402
from legal_hpo_env.tasks.suite import TASK_SETS  # noqa: E402
from support import CURVE_META, CURVE_TASK, curve_table  # noqa: E402


def flipped(backend: TableBackend) -> TableBackend:
    """The same runs with every dev score s turned into 1 - s: the opposite ranking."""
    results = [dataclasses.replace(r, dev_score=1.0 - r.dev_score) for c in backend.configurations(CURVE_TASK)
               for r in backend.runs(CURVE_TASK, c)]
    return TableBackend(results, meta={CURVE_TASK: CURVE_META})


def test_the_fidelity_comparison_ranks_agreeing_and_opposite_landscapes():
    finetune = curve_table()
    same = fidelities.compare(curve_table(), finetune, curve_table(), CURVE_TASK)
    assert same["spearman"] == pytest.approx(1.0) and same["regret_of_trusting_the_head"] == 0.0
    assert same["shared_points"] == len(finetune.configurations(CURVE_TASK))
    opposite = fidelities.compare(flipped(finetune), finetune, curve_table(), CURVE_TASK)
    assert opposite["spearman"] == pytest.approx(-1.0)
    assert opposite["regret_of_trusting_the_head"] == 1.0  # the head's best is fine-tuning's worst
    assert opposite["finetune_optimum"]["config"] == same["finetune_optimum"]["config"]
    assert set(opposite["by_learning_rate"]) == {"finetune", "head_on_finetune_grid", "head_table"}


def test_the_clause_types_task_keeps_each_clause_with_one_category(tmp_path, monkeypatch):
    folder = tmp_path / "legalbench"
    folder.mkdir()
    tasks = list(TASK_SETS["family:contract_clauses"])
    for i, task in enumerate(tasks):
        with open(folder / f"{task}.tsv", "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, delimiter="\t")
            out.writerow(["label", "text"])
            out.writerow(["Yes", f"clause only {task} has"])
            out.writerow(["No", f"a negative of {task}"])
            out.writerow(["Yes" if i < 2 else "No", "a clause of the first two categories"])
    monkeypatch.setenv("LEGAL_HPO_DATA", str(tmp_path))
    path, counts = live_transfer.clause_types_csv(tmp_path / "out")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert counts == {task.removeprefix("cuad_"): 1 for task in tasks}  # 22 categories, one clause each
    assert sorted(r["text"] for r in rows) == sorted(f"clause only {t} has" for t in tasks)
    assert all(r["label"] == r["text"].split()[2].removeprefix("cuad_") for r in rows)
