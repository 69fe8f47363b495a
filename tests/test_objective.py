"""The objective: one configuration on one task, through the trial store."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("torch")

from legal_hpo_env import objective as objective_module  # noqa: E402
from legal_hpo_env.backends.head import HeadBackend  # noqa: E402
from legal_hpo_env.objective import Objective, as_config, evaluate  # noqa: E402
from legal_hpo_env.space import HyperParamError, HyperParams  # noqa: E402
from legal_hpo_env.store import TrialStore  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CONFIG = {"learning_rate": 1e-3, "epochs": 2}


@pytest.fixture
def calls(monkeypatch):
    """Count trainings: every call of HeadBackend.evaluate."""
    count = {"n": 0}
    original = HeadBackend.evaluate

    def counting(self, *args, **kwargs):
        count["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HeadBackend, "evaluate", counting)
    return count


def run(tiny_task, tiny_model, store, config=CONFIG, **kwargs):
    kwargs.setdefault("max_length", 32)
    return evaluate(tiny_task, config, backend="head", model=tiny_model, store=store, device="cpu", **kwargs)


def test_second_identical_call_comes_from_the_store(tiny_task, tiny_model, tmp_path, calls):
    store = tmp_path / "trials.db"
    first = run(tiny_task, tiny_model, store)
    assert calls["n"] == 1 and not first.from_store
    second = run(tiny_task, tiny_model, store)
    assert calls["n"] == 1  # not trained again
    assert second.from_store
    assert second == dataclasses.replace(first, from_store=True)
    # the same through a HyperParams object and an explicit default value
    third = run(tiny_task, tiny_model, store, config=HyperParams(**CONFIG, batch_size=8))
    assert calls["n"] == 1 and third.from_store
    assert len(TrialStore(store)) == 1


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"config": {**CONFIG, "dropout": 0.2}}, {"max_train": 12}, {"max_length": 16}],
    ids=["seed", "config", "max_train", "max_length"],
)
def test_anything_that_changes_the_result_trains_again(tiny_task, tiny_model, tmp_path, calls, change):
    store = tmp_path / "trials.db"
    run(tiny_task, tiny_model, store)
    assert calls["n"] == 1
    other = run(tiny_task, tiny_model, store, **change)
    assert calls["n"] == 2 and not other.from_store
    assert len(TrialStore(store)) == 2
    again = run(tiny_task, tiny_model, store, **change)
    assert calls["n"] == 2 and again.from_store


def test_store_object_and_memory_cache(tiny_task, tiny_model, tmp_path, calls):
    store = TrialStore(tmp_path / "trials.db")
    objective = Objective(tiny_task, "head", model=tiny_model, store=store, device="cpu")
    first = objective(CONFIG, seed=0)
    assert objective(CONFIG, seed=0) is first  # in-memory, same process
    assert calls["n"] == 1
    fresh = Objective(tiny_task, "head", model=tiny_model, store=store, device="cpu")
    assert fresh(CONFIG, seed=0).from_store and calls["n"] == 1
    # without a store, a new objective trains again
    Objective(tiny_task, "head", model=tiny_model, device="cpu")(CONFIG, seed=0)
    assert calls["n"] == 2
    assert objective.task_name == first.task
    assert objective.meta_features()["num_labels"] == 3.0


def test_invalid_config_fails_before_loading(tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("data was loaded before the configuration was checked")

    monkeypatch.setattr(objective_module, "load_task", no_loading)
    monkeypatch.setattr(objective_module, "make_backend", no_loading)
    for config in ({"learning_rate": -1.0}, {"lr": 1e-3}, {"class_weighting": "auto"}, {"epochs": 0}):
        with pytest.raises(HyperParamError):
            evaluate("unfair_tos", config, data_dir=tmp_path / "missing", store=tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()
    with pytest.raises(TypeError, match="mapping"):
        evaluate("unfair_tos", [("epochs", 2)])
    with pytest.raises(ValueError, match="max_train"):
        evaluate("unfair_tos", {}, max_train=0)


def test_bad_seed(tiny_task, tiny_model):
    objective = Objective(tiny_task, "head", model=tiny_model, device="cpu")
    for seed in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="seed"):
            objective(CONFIG, seed=seed)


def test_numpy_seed_becomes_a_native_int(tiny_task, tiny_model, tmp_path, calls):
    import numpy as np

    store = tmp_path / "trials.db"
    result = run(tiny_task, tiny_model, store, seed=np.int64(2))
    assert type(result.seed) is int and result.seed == 2
    assert run(tiny_task, tiny_model, store, seed=2).from_store and calls["n"] == 1


def test_as_config():
    assert as_config(None) == HyperParams()
    config = HyperParams(epochs=2)
    assert as_config(config) is config
    assert as_config({"epochs": 2}) == config
