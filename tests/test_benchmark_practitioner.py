"""``benchmarks/practitioner.py``: one tiny budgeted task end to end, its record, resumption and report section."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna")

from benchmarks import practitioner, report  # noqa: E402


@pytest.mark.usefixtures("torch_one_thread")
def test_a_tiny_budget_saves_a_model_and_records_it_beside_the_baselines(
    tiny_task, tiny_model, tmp_path, monkeypatch, capsys
):
    out, models = tmp_path / "results", tmp_path / "models"
    argv = ["--tasks", tiny_task, "--time-budget", "2m", "--max-trials", "4", "--model", tiny_model,
            "--max-length", "32", "--device", "cpu", "--models", str(models), "--output", str(out)]
    practitioner.main(argv)
    data = json.loads((out / "practitioner.json").read_text())
    row = data["tasks"][tiny_task]
    assert row["backend"] == "head" and row["time_budget"] == 120.0 and row["time_used"] < 120
    assert row["trials"] == 4 == row["trials_completed"] + row["trials_pruned"] and row["stop_reason"] == "max trials"
    saved, best = row["saved_model"], row["best"]
    assert (models / saved["folder"] / "legal_hpo.json").is_file()
    assert json.loads((models / saved["folder"] / "legal_hpo.json").read_text())["config"] == best["config"]
    assert saved["test"]["score"] == pytest.approx(best["test_score"])  # the same configuration and seed again
    svm = row["baselines"]["tfidf_svm"]
    assert set(svm["test"]) >= {"score", "accuracy", "macro_f1"} and set(row["baselines"]["majority"]["dev"]) >= {
        "score", "accuracy", "macro_f1"}
    assert row["delta_vs_svm"] == pytest.approx(saved["test"]["score"] - svm["test"]["score"])
    assert [p["dev_score"] for p in row["incumbent"]] == sorted(p["dev_score"] for p in row["incumbent"])
    assert (out / "practitioner.png").is_file()

    capsys.readouterr()
    practitioner.main(argv)  # resumes: the task is already there
    assert "already in" in capsys.readouterr().err

    monkeypatch.setattr(report, "RESULTS", out)
    lines = report.practitioner()
    assert lines[2].startswith("| task | metric | majority | TF-IDF + SVM | tuned model (backend)")
    assert lines[4].startswith(f"| {tiny_task} | {row['metric']} |") and "(head)" in lines[4]
    monkeypatch.setattr(report, "RESULTS", tmp_path / "none")
    assert report.practitioner() == []  # no results, no section


def test_a_model_folder_name_is_safe_for_any_task_name():
    assert practitioner.model_folder("overruling", "head") == "overruling-head"
    assert "/" not in practitioner.model_folder("custom:/data/my clauses.csv", "finetune")
