"""``legal-hpo tune --time-budget``: the budgeted search from the command line, its report and refusals."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna")

from legal_hpo_env.cli import main  # noqa: E402


def test_a_time_budget_on_the_recorded_table_spends_its_recorded_seconds(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LEGAL_HPO_DATA", raising=False)
    report = tmp_path / "report.json"
    assert main(["tune", "--task", "overruling", "--time-budget", "30s", "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(report.read_text())
    assert data["agent"] == "budgeted-tpe" and data["budget"] is None and data["max_trials"] is None
    assert data["time_budget"] == 30.0 and data["clock"] == "recorded" and data["stop_reason"] == "time budget"
    trials = data["trials"]
    assert data["time_used"] <= 30.0 + max(t["budget_seconds"] for t in trials)
    assert data["trials_pruned"] == sum(t["pruned"] for t in trials) > 0
    assert data["trials_completed"] == len(trials) - data["trials_pruned"] > 0
    for t in trials:
        assert (t["pruned_at_epoch"] is None) != t["pruned"]
    best = data["best"]
    assert not trials[best["trial"] - 1]["pruned"] and data["best_config"] == best["config"]
    assert data["best_score"] == max(t["dev_score"] for t in trials if not t["pruned"] and not t["diverged"])
    assert data["regret"] is not None  # the table knows the optimum
    assert "time budget 30s: used" in out and "pruned" in out and "best configuration (budgeted-tpe" in out
    assert "best dev" in err  # the progress bar

    assert main(["tune", "--task", "overruling", "--time-budget", "1h", "--budget", "4",
                 "--report", str(report)]) == 0  # --budget caps the trials
    data = json.loads(report.read_text())
    assert len(data["trials"]) == 4 and data["stop_reason"] == "max trials" and data["budget"] == 4


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--time-budget", "10d"], ["--time-budget '10d' is not a duration", "90s, 45m, 1.5h or plain seconds"]),
        (["--time-budget", "0"], ["--time-budget '0' leaves no time"]),
        (["--time-budget", "5m", "--agent", "random"], ["drop --agent random"]),
        (["--time-budget", "5m", "--backend", "head", "--ray"], ["drop --ray"]),
        (["--time-budget", "5m", "--budget", "0"], ["--budget 0"]),
    ],
)
def test_a_bad_time_budget_is_one_clear_line_before_any_trial(argv, fragments, tmp_path, capsys):
    assert main(["tune", "--task", "overruling", "--report", str(tmp_path / "r.json"), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.mark.usefixtures("torch_one_thread")
def test_a_live_time_budget_saves_the_best_completed_model(tiny_task, tiny_model, tmp_path, capsys):
    report, folder = tmp_path / "report.json", tmp_path / "model"
    argv = ["tune", "--task", tiny_task, "--backend", "head", "--model", tiny_model, "--max-length", "32",
            "--time-budget", "2m", "--budget", "6", "--no-baselines", "--report", str(report),
            "--store", str(tmp_path / "s.sqlite"), "--save-model", str(folder)]
    assert main(argv) == 0
    data = json.loads(report.read_text())
    assert data["clock"] == "wall" and len(data["trials"]) == 6 and data["time_used"] < 120
    assert not data["trials"][data["best"]["trial"] - 1]["pruned"]
    saved = json.loads((folder / "legal_hpo.json").read_text())
    assert saved["config"] == data["best_config"]
    assert data["saved_model"]["seed"] == data["best_seed"]
