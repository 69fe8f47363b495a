"""Smoke and behaviour tests of every ``legal-hpo`` command, with tiny budgets."""

from __future__ import annotations

import json

import pytest

from legal_hpo_env.cli import main
from support import REAL_DATA, requires_real_data


def test_tasks_lists_every_task_and_says_where_data_is_missing(tmp_path, capsys):
    assert main(["tasks", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    for name in ("unfair_tos", "overruling", "contract_nli", "scotus", "jec_qa", "cjrc"):
        assert name in out
    assert "missing" in out and "do not exist" in err


def test_evaluate_prints_the_trial_as_json(tiny_task, tiny_model, tmp_path, capsys):
    out_file = tmp_path / "result.json"
    code = main(["evaluate", "--task", tiny_task, "--backend", "head", "--model", tiny_model, "--epochs", "2",
                 "--learning-rate", "1e-3", "--class-weighting", "balanced", "--output", str(out_file)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["learning_rate"] == 1e-3 and result["config"]["class_weighting"] == "balanced"
    assert len(result["dev_curve"]) == 2 and 0.0 <= result["test_score"] <= 1.0
    assert json.loads(out_file.read_text()) == result


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--task", "nope"], "unknown task 'nope'"),
        (["evaluate", "--task", "unfair_tos", "--learning-rate", "5"], "learning_rate=5.0 is out of range"),
        (["evaluate", "--task", "unfair_tos", "--data-dir", "/no/such/folder"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_error_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("agent", ["random", "tpe", "default"])
def test_tune_reports_the_best_configuration(agent, tiny_task, tiny_model, tmp_path, capsys):
    report = tmp_path / "report.json"
    argv = ["tune", "--agent", agent, "--task", tiny_task, "--backend", "head", "--model", tiny_model,
            "--budget", "3", "--max-length", "32", "--report", str(report), "--store", str(tmp_path / "s.sqlite")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["agent"] == agent and len(data["dev_scores"]) == 3
    assert data["best_score"] == max(data["dev_scores"])
    assert "best configuration" in out and "dev " in out


def test_train_agent_then_tune_with_the_saved_policy(tiny_task, tiny_model, tmp_path, capsys):
    policy = tmp_path / "policy.pt"
    common = ["--task", tiny_task, "--backend", "head", "--model", tiny_model, "--budget", "3", "--max-length", "32",
              "--store", str(tmp_path / "s.sqlite")]
    assert main(["train-agent", "--agent", "reinforce", "--steps", "6", "--output", str(policy), *common]) == 0
    assert policy.is_file()
    assert main(["tune", "--agent", "reinforce", "--policy", str(policy), "--report", str(tmp_path / "r.json"),
                 *common]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["agent"] == "reinforce"


@pytest.mark.parametrize("agent", ["reinforce", "ppo", "recurrent-ppo"])
def test_train_agent_shows_progress_logs_tensorboard_and_keeps_its_action_mode(agent, tmp_path, capsys):
    if agent == "recurrent-ppo":
        pytest.importorskip("sb3_contrib")
    policy = tmp_path / ("policy.pt" if agent == "reinforce" else "policy.zip")
    logs = tmp_path / "tb"
    assert main(["train-agent", "--agent", agent, "--task", "overruling", "scotus", "--action-mode", "delta",
                 "--budget", "5", "--steps", "200", "--output", str(policy), "--tensorboard", str(logs)]) == 0
    err = capsys.readouterr().err
    assert f"training {agent}" in err and "200" in err  # the progress bar, on stderr
    assert list(logs.rglob("events.out.tfevents.*"))
    report = tmp_path / "r.json"
    tune = ["tune", "--agent", agent, "--policy", str(policy), "--task", "unfair_tos", "--budget", "5",
            "--report", str(report)]
    assert main([*tune, "--action-mode", "delta"]) == 0
    assert len(json.loads(report.read_text())["configs"]) == 5
    assert main(tune) == 2  # a delta policy in a direct env: refused, saying why
    assert "--action-mode" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["tune", "--task", "jec_qa"], ["'jec_qa'", "--backend head"]),
        (["tune", "--task", "overruling", "--report", "/nonexistent-dir/r.json"], ["--report", "does not exist"]),
        (["tune", "--task", "overruling", "--max-train", "100"], ["max_train", "cannot honour"]),
        (["evaluate", "--task", "unfair_tos", "--device", "tpu"], ["device='tpu'", "'cpu'"]),
    ],
)
def test_common_mistakes_are_one_clear_line_before_any_trial(argv, fragments, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no default report lands in the checkout
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err  # no trial ran, no traceback
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_tasks_shows_one_tasks_labels_and_splits(tiny_task, capsys):
    assert main(["tasks", "--task", tiny_task]) == 0
    out = capsys.readouterr().out
    assert "split sizes: train 42, dev 9, test 9" in out
    for label in ("Arbitration", "Other", "Termination"):
        assert label in out
    assert main(["tasks", "--task", "custom:/no/such/file.csv"]) == 2


def test_evaluate_refuses_off_grid_values_unless_asked(tiny_task, tiny_model, capsys):
    argv = ["evaluate", "--task", tiny_task, "--model", tiny_model, "--epochs", "1", "--max-length", "32"]
    assert main([*argv, "--learning-rate", "0.007"]) == 2
    err = capsys.readouterr().err
    assert "--learning-rate 0.007 is off the search grid" in err and "nearest: 0.003, 0.01" in err
    assert "--off-grid" in err
    assert main([*argv, "--learning-rate", "0.007", "--off-grid"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["learning_rate"] == 0.007
    assert main(argv) == 0  # the head's own default learning rate, where a linear head learns
    assert json.loads(capsys.readouterr().out)["config"]["learning_rate"] == 3e-3


def test_an_rl_agent_never_trains_on_the_task_it_tunes(tiny_task, tiny_model, tmp_path, capsys):
    report = tmp_path / "report.json"
    argv = ["tune", "--agent", "reinforce", "--task", "unfair_tos", "--budget", "4", "--train-steps", "8",
            "--report", str(report)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "held out: unfair_tos" in err and "'overruling'" in err and "'unfair_tos'" not in err.split("(held")[0]
    assert json.loads(report.read_text())["task"] == "unfair_tos"
    live = ["tune", "--agent", "reinforce", "--task", tiny_task, "--backend", "head", "--model", tiny_model,
            "--max-length", "32", "--report", str(report), "--train-steps", "8"]
    assert main(live) == 2 and "would train on the task it tunes" in capsys.readouterr().err


def test_tune_reports_every_trial_its_seeds_and_the_baselines(tiny_task, tiny_model, tmp_path, capsys):
    from legal_hpo_env.tasks import load_task

    report = tmp_path / "report.json"
    argv = ["tune", "--agent", "random", "--task", tiny_task, "--backend", "head", "--model", tiny_model,
            "--budget", "3", "--max-length", "32", "--max-train", "30", "--trial-seeds", "2",
            "--report", str(report), "--store", str(tmp_path / "s.sqlite")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["trial_seeds"] == 2 and len(data["trials"]) == 3
    assert data["sizes"] == {"train": 30, "dev": 9, "test": 9} and data["data_hash"] == load_task(tiny_task).data_hash
    for record, config in zip(data["trials"], data["configs"]):
        assert record["config"] == config and record["from_store"] is False
        for field in ("seed", "dev_score", "test_score", "dev_accuracy", "dev_macro_f1", "test_accuracy",
                      "test_macro_f1", "train_loss", "seconds"):
            assert record[field] is not None, field
        assert record["test_score"] == record["test_macro_f1"]  # the task's headline metric
        assert [r["seed"] for r in record["seed_runs"]] == [0, 1]
    best = data["best"]
    picked = data["trials"][best["trial"] - 1]
    assert data["best_config"] == best["config"] == picked["config"]
    assert data["best_score"] == best["dev"]["mean"] == picked["over_seeds"]["dev"]["mean"]
    assert data["best_score"] == max(t["over_seeds"]["dev"]["mean"] for t in data["trials"])
    assert set(best["test"]) == {"mean", "std", "min", "max"} and best["seed"] in (0, 1)
    baselines = data["baselines"]
    assert baselines["sizes"] == data["sizes"] and baselines["metric"] == "macro_f1"  # the trials' own split
    for name in ("tfidf_svm", "majority"):
        assert set(baselines[name]["test"]) == {"accuracy", "macro_f1", "score"}
    assert f"TF-IDF + linear SVM {baselines['tfidf_svm']['test']['score']:.4f}" in out
    assert f"majority class {baselines['majority']['test']['score']:.4f}" in out

    assert main([*argv, "--no-baselines"]) == 0  # again: every seed of every trial from the store
    again = json.loads(report.read_text())
    assert all(t["from_store"] and all(r["from_store"] for r in t["seed_runs"]) for t in again["trials"])
    assert again["best"] == best and again["baselines"] == {"skipped": "--no-baselines"}
    assert "baselines skipped" in capsys.readouterr().out


def test_tune_on_the_recorded_table_skips_baselines_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LEGAL_HPO_DATA", raising=False)
    report = tmp_path / "report.json"
    assert main(["tune", "--task", "overruling", "--budget", "3", "--trial-seeds", "3", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert "not data" in data["baselines"]["skipped"] and "LEGAL_HPO_DATA" in data["baselines"]["skipped"]
    assert data["sizes"] == {"train": 1676, "dev": 359, "test": 359}  # the table's split
    assert all(sorted(r["seed"] for r in t["seed_runs"]) == [0, 1, 2] for t in data["trials"])
    assert "baselines skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--trial-seeds", "0"], "--trial-seeds 0"),
        (["--trial-seeds", "4"], "holds 3 seeds per configuration"),
    ],
)
def test_tune_refuses_impossible_trial_seeds(argv, fragment, tmp_path, capsys):
    assert main(["tune", "--task", "overruling", "--report", str(tmp_path / "r.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


@requires_real_data
@pytest.mark.real_data
def test_recorded_tuning_scores_baselines_on_the_tables_split(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGAL_HPO_DATA", str(REAL_DATA))
    report = tmp_path / "report.json"
    assert main(["tune", "--task", "overruling", "--budget", "2", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["baselines"]["sizes"] == data["sizes"] and data["baselines"]["fidelity"]["max_length"] == 128
    assert data["baselines"]["tfidf_svm"]["test"]["accuracy"] > data["baselines"]["majority"]["test"]["accuracy"]
