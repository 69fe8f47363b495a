"""Save, load and predict: the tuned model out of `tune --save-model`, used by `predict`."""

from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")

from legal_hpo_env.backends import make_backend  # noqa: E402
from legal_hpo_env.cli import main  # noqa: E402
from legal_hpo_env.model import ModelFileError, TunedModel  # noqa: E402
from legal_hpo_env.space import HyperParams  # noqa: E402
from legal_hpo_env.tasks import load_task  # noqa: E402
from support import FAST, REAL_DATA, requires_real_data, write_classification_csv  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize(("backend", "config"), [
    ("finetune", HyperParams(learning_rate=1e-3, epochs=2, batch_size=16)),
    ("head", HyperParams(learning_rate=1e-2, epochs=3, batch_size=16)),
])
def test_a_saved_model_predicts_what_its_trial_scored(tiny_task, tiny_model, tmp_path, backend, config):
    task = load_task(tiny_task)
    folder = tmp_path / "model"
    result = make_backend(backend, model=tiny_model, device="cpu").evaluate(task, config, FAST, seed=0, save_to=folder)
    model = TunedModel.load(folder)
    meta = json.loads((folder / "legal_hpo.json").read_text())
    assert meta["kind"] == backend and meta["scores"]["test_score"] == result.test_score
    assert meta["data_hash"] == task.data_hash and meta["split_sizes"] == result.sizes
    assert "# " in (folder / "README.md").read_text()  # the model card
    predictions = model.predict([ex.text for ex in task.test], [ex.text_pair for ex in task.test])
    accuracy = sum(p["label"] == task.label_names[ex.label] for p, ex in zip(predictions, task.test)) / len(task.test)
    assert accuracy == pytest.approx(result.test_accuracy)  # the saved weights are the best dev epoch's
    for p in predictions:
        assert set(p["probabilities"]) == set(task.label_names) and sum(p["probabilities"].values()) == pytest.approx(1)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)


def test_tune_save_model_then_predict_from_the_cli(tiny_task, tiny_model, tmp_path, capsys):
    folder, report = tmp_path / "best", tmp_path / "report.json"
    assert main(["tune", "--agent", "random", "--task", tiny_task, "--backend", "head", "--model", tiny_model,
                 "--max-length", "32", "--budget", "3", "--report", str(report), "--save-model", str(folder)]) == 0
    saved = json.loads(report.read_text())["saved_model"]
    assert saved["dev_score"] == json.loads(report.read_text())["best_score"]  # the best trial, trained again
    inputs = write_classification_csv(tmp_path / "new.csv", n=12, seed=5)
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(folder), "--input", str(inputs), "--output", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and set(rows[0]) == {"label", "p_Arbitration", "p_Other", "p_Termination"}
    assert main(["predict", "--model", str(tmp_path), "--input", str(inputs)]) == 2  # not a model folder
    assert "not a saved LegalHPO model" in capsys.readouterr().err
    assert main(["tune", "--task", "overruling", "--save-model", str(folder)]) == 2  # a table holds no models
    with pytest.raises(ModelFileError):
        TunedModel.load(tmp_path)


@requires_real_data
@pytest.mark.real_data
def test_the_real_minilm_saved_and_reloaded_predicts_as_it_scored(tmp_path):
    """The packaged MiniLM on a small cap of a real task: the head saved, reloaded and run."""
    from legal_hpo_env.backends import Fidelity

    task = load_task("overruling", REAL_DATA)
    folder = tmp_path / "overruling-head"
    result = make_backend("head", device="cpu").evaluate(
        task, HyperParams(learning_rate=3e-3, epochs=3, batch_size=32), Fidelity(max_train=200), seed=0, save_to=folder
    )
    predictions = TunedModel.load(folder).predict([ex.text for ex in task.test])
    accuracy = sum(p["label"] == task.label_names[ex.label] for p, ex in zip(predictions, task.test)) / len(task.test)
    assert accuracy == pytest.approx(result.test_accuracy, abs=1e-9) and accuracy > 0.7  # chance is 0.5
