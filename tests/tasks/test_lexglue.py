"""The LexGLUE source, tested offline: a stand-in ``datasets`` module serves rows shaped
as LexGLUE's, so the conversion and the loader run without the hub."""

from __future__ import annotations

import sys
import types

import pytest

from legal_hpo_env.tasks import DataError, UnknownTaskError, get_spec, load_task
from legal_hpo_env.tasks.lexglue import convert


class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _Split(list):
    def __init__(self, rows, features, fingerprint):
        super().__init__(rows)
        self.features = features
        self._fingerprint = fingerprint


def fake_datasets(monkeypatch, splits_by_config, fail=None):
    module = types.ModuleType("datasets")

    def load_dataset(path, config):
        assert path == "coastalnlp/lex_glue"
        if fail:
            raise fail
        return splits_by_config[config]

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def unfair_splits():
    features = {"labels": types.SimpleNamespace(feature=_ClassLabel(["Limitation of liability", "Arbitration"]))}
    rows = {
        "train": [{"text": "we may end it", "labels": []}, {"text": "disputes go to arbitration", "labels": [1]},
                  {"text": "we are not liable and arbitrate", "labels": [0, 1]}],
        "validation": [{"text": "fine print", "labels": []}],
        "test": [{"text": "arbitration applies", "labels": [1]}],
    }
    return {name: _Split(r, features, f"fp-{name}") for name, r in rows.items()}


def test_unfair_tos_official_splits_become_single_label(monkeypatch):
    fake_datasets(monkeypatch, {"unfair_tos": unfair_splits()})
    task = load_task("lexglue/unfair_tos")
    assert task.label_names == ("Limitation of liability", "Arbitration", "fair")
    assert [ex.label for ex in task.train] == [2, 1, 0]  # none -> fair; several -> the first
    assert task.sizes() == {"train": 3, "dev": 1, "test": 1}
    assert task.spec.family == "terms_of_service" and len(task.data_hash) == 16


def test_case_hold_becomes_grouped_pairs():
    rows = [{"context": "held that", "endings": ["a", "b", "c"], "label": 2}]
    names, examples = convert("case_hold", rows, [], "train")
    assert names == ["not the holding", "holding"]
    assert [(ex.text_pair, ex.label) for ex in examples] == [("a", 0), ("b", 0), ("c", 1)]
    assert len({ex.group for ex in examples}) == 1


def test_scotus_is_the_issue_area_task():
    names, examples = convert("scotus", [{"text": "facts", "label": 3}], ["a", "b", "c", "d"], "train")
    assert names == ["a", "b", "c", "d"] and examples[0].label == 3


def test_offline_or_missing_datasets_give_one_clear_error(monkeypatch):
    fake_datasets(monkeypatch, {}, fail=ConnectionError("no route to host"))
    with pytest.raises(DataError, match="needs internet access the first time"):
        load_task("lexglue/ledgar")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError, match=r"pip install 'legal-hpo-env\[lexglue\]'"):
        load_task("lexglue/scotus")


def test_unknown_lexglue_config_lists_the_official_ones():
    with pytest.raises(UnknownTaskError, match="lexglue/case_hold"):
        get_spec("lexglue/ecthr_a")
