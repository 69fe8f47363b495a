"""Reliability, hostile input: bad data files, configurations, seeds, arguments and actions
are each a clear typed error that leaves no file behind and the store intact.

Random and extreme actions are fuzzed in ``tests/test_env_fuzz.py``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402,F401  (registers the env)
from legal_hpo_env.env import LegalHPOEnv  # noqa: E402
from legal_hpo_env.objective import Objective, evaluate  # noqa: E402
from legal_hpo_env.space import SPACE, HyperParamError  # noqa: E402
from legal_hpo_env.store import StoreError, TrialStore  # noqa: E402
from legal_hpo_env.tasks import DataError  # noqa: E402
from legal_hpo_env.tasks.specs import TaskSpec  # noqa: E402
from support import FAST, make_result, report_figure  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

K = len(SPACE)

@dataclass
class Hostile:
    """What a hostile-input case can touch: files in a folder, the tiny task and model,
    and a store of finished trials that no case may damage."""

    folder: Path
    task: str
    model: str
    store: Path

    def file(self, name: str, content: str | bytes, encoding: str = "utf-8") -> str:
        path = self.folder / "data" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, str):
            content = content.encode(encoding)
        path.write_bytes(content)
        return f"custom:{path}"

    def env(self, **changes: Any) -> gym.Env:
        kwargs = dict(task=self.task, backend="head", model=self.model, budget=3, max_length=32, device="cpu",
                      store=str(self.store))
        return gym.make("LegalHPO-v0", **{**kwargs, **changes})

    def load(self, name: str, content: str | bytes, encoding: str = "utf-8") -> None:
        self.env(task=self.file(name, content, encoding))

    def step(self, action_mode: str, action: Any) -> None:
        env = self.env(action_mode=action_mode)
        env.reset(seed=0)
        env.step(action)

    def trial(self, config: Any = None, seed: Any = 0) -> None:
        Objective(self.task, "head", model=self.model, fidelity=FAST, store=self.store, device="cpu")(config, seed)


def symlink_loop(h: Hostile) -> Path:
    a, b = h.folder / "data" / "loop-a.csv", h.folder / "data" / "loop-b.csv"
    a.parent.mkdir(exist_ok=True)
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def fifo(h: Hostile) -> str:
    """A named pipe where the store should be: opening it for reading would block forever."""
    path = h.folder / "data" / "pipe.db"
    path.parent.mkdir(exist_ok=True)
    os.mkfifo(path)
    return str(path)


def rows(n: int = 30, classes: tuple[str, ...] = ("A", "B", "C")) -> str:
    return "".join(f"clause number {i} about the service,{classes[i % len(classes)]}\n" for i in range(n))


def jec_with_one_correct_answer(h: Hostile) -> None:
    """A JEC-QA-style file whose only correct option sits in a question the (seeded,
    group-aware) split sends to dev: the label 'correct' is never seen in training."""
    lines = [json.dumps({"id": f"q{i}", "statement": f"question {i}", "answer": ["A"] if i == 0 else [],
                         "option_list": {"A": "yes", "B": "no", "C": "maybe", "D": "never"}}) for i in range(20)]
    h.file("jec.jsonl", "\n".join(lines) + "\n")
    spec = TaskSpec(name="hostile_jec", family="chinese_qa", reader="jec_qa", files=("jec.jsonl",), metric="accuracy",
                    description="hostile", licence="test", group_split=True)
    Objective(spec, "head", model=h.model, data_dir=h.folder / "data", store=h.store)


#: (id, case, expected error type, fragments the message must hold)
HOSTILE: list[tuple[str, Callable[[Hostile], Any], type[BaseException], list[str]]] = [
    # data files
    ("csv missing label column", lambda h: h.load("a.csv", "text,category\n" + rows()),
     DataError, ["missing column", "label"]),
    ("csv missing text column", lambda h: h.load("a.csv", "body,label\n" + rows()),
     DataError, ["missing column", "text"]),
    ("empty file", lambda h: h.load("a.csv", b""), DataError, ["is empty"]),
    ("blank file", lambda h: h.load("a.csv", "\n  \n\n"), DataError, ["is empty"]),
    ("header only", lambda h: h.load("a.csv", "text,label\n"), DataError, ["no rows"]),
    ("latin-1 file", lambda h: h.load("a.csv", "text,label\n" + rows().replace("service", "société"), "latin-1"),
     DataError, ["not UTF-8", "UTF-8"]),
    ("utf-16 file", lambda h: h.load("a.csv", "text,label\n" + rows(), "utf-16"), DataError, ["not UTF-8"]),
    ("binary garbage", lambda h: h.load("a.csv", np.random.default_rng(0).bytes(4096)), DataError, ["not UTF-8"]),
    ("label unseen in training", jec_with_one_correct_answer, DataError, ["'correct'", "training"]),
    ("single class", lambda h: h.load("a.csv", "text,label\n" + rows(classes=("A",))), DataError, ["single value"]),
    ("too few examples", lambda h: h.load("a.csv", "text,label\n" + rows(5, ("A", "B"))), DataError, ["too few"]),
    ("empty text cells", lambda h: h.load("a.csv", "text,label\n" + rows() + ",A\n"), DataError, ["'text'", "empty"]),
    ("ragged csv row", lambda h: h.load("a.csv", "text,label\n" + rows() + "only text\n"),
     DataError, ["'label'", "missing"]),
    ("jsonl array line", lambda h: h.load("a.jsonl", '{"text": "a", "label": "A"}\n[1, 2]\n'),
     DataError, ["line 2", "JSON object"]),
    ("jsonl broken line", lambda h: h.load("a.jsonl", '{"text": "a", "label": "A"}\n{"text": \n'),
     DataError, ["line 2", "not valid JSON"]),
    ("jsonl nested text", lambda h: h.load("a.jsonl", '{"text": {"a": 1}, "label": "A"}\n'),
     DataError, ["'text'", "dict"]),
    ("jsonl NaN label", lambda h: h.load("a.jsonl", '{"text": "a", "label": NaN}\n'), DataError, ["'label'", "float"]),
    ("unsupported file type", lambda h: h.load("a.xlsx", "text,label\n" + rows()), DataError, ["unsupported", ".xlsx"]),
    ("missing file", lambda h: h.env(task=f"custom:{h.folder / 'nope.csv'}"),
     DataError, ["nope.csv", "does not exist"]),
    ("folder as data file", lambda h: h.env(task=f"custom:{h.folder}"), DataError, ["is a folder", "CSV"]),
    ("symlink loop as data file", lambda h: h.env(task=f"custom:{symlink_loop(h)}"), DataError, ["symlink loop"]),
    ("jsonl nested 100k deep",
     lambda h: h.load("a.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": "A"}\n'),
     DataError, ["line 1", "nested too deeply"]),
    # configurations and seeds
    ("lr NaN", lambda h: h.trial({"learning_rate": math.nan}), HyperParamError, ["learning_rate=nan"]),
    ("lr inf", lambda h: h.trial({"learning_rate": math.inf}), HyperParamError, ["learning_rate=inf", "range"]),
    ("lr huge", lambda h: h.trial({"learning_rate": 1e300}), HyperParamError, ["learning_rate", "range"]),
    ("batch size huge", lambda h: h.trial({"batch_size": 10**12}), HyperParamError, ["batch_size", "range"]),
    ("epochs fractional", lambda h: h.trial({"epochs": 2.5}), HyperParamError, ["epochs=2.5", "whole"]),
    ("epochs as text", lambda h: h.trial({"epochs": "3"}), HyperParamError, ["epochs='3'", "str"]),
    ("dropout None", lambda h: h.trial({"dropout": None}), HyperParamError, ["dropout=None"]),
    ("class weighting number", lambda h: h.trial({"class_weighting": 1}),
     HyperParamError, ["class_weighting=1", "'balanced'"]),
    ("lr as array", lambda h: h.trial({"learning_rate": np.array([1e-3])}),
     HyperParamError, ["learning_rate", "ndarray"]),
    ("unknown hyperparameter", lambda h: h.trial({"lr": 1e-3}), HyperParamError, ["'lr'", "learning_rate"]),
    ("config not a mapping", lambda h: h.trial([("epochs", 2)]), TypeError, ["mapping"]),
    ("seed NaN", lambda h: h.trial(seed=math.nan), ValueError, ["seed=nan"]),
    ("seed huge", lambda h: h.trial(seed=2**70), ValueError, ["seed=", "2**63"]),
    ("seed negative", lambda h: h.trial(seed=-1), ValueError, ["seed=-1"]),
    # environment arguments
    ("unknown env argument", lambda h: h.env(learning_rate_schedule="cosine"), TypeError, ["learning_rate_schedule"]),
    ("unknown evaluate argument", lambda h: evaluate(h.task, {}, lr=1e-3, store=h.store), TypeError, ["'lr'"]),
    ("misspelt objective argument", lambda h: Objective(h.task, "head", modle=h.model, store=h.store),
     TypeError, ["'modle'"]),
    ("max_length NaN", lambda h: h.env(max_length=math.nan), ValueError, ["max_length=nan"]),
    ("max_length inf", lambda h: h.env(max_length=math.inf), ValueError, ["max_length=inf"]),
    ("max_length fractional", lambda h: h.env(max_length=32.5), ValueError, ["max_length=32.5"]),
    ("max_train as text", lambda h: h.env(max_train="12"), ValueError, ["max_train='12'"]),
    ("budget inf", lambda h: h.env(budget=math.inf), ValueError, ["budget=inf"]),
    ("cost penalty huge", lambda h: h.env(cost_penalty=1e308), ValueError, ["cost_penalty", "at most"]),
    ("diverged penalty -inf", lambda h: h.env(diverged_penalty=-math.inf), ValueError, ["diverged_penalty"]),
    ("trial seeds huge", lambda h: h.env(trial_seeds=10**30), ValueError, ["trial_seeds"]),
    ("task a number", lambda h: h.env(task=123), TypeError, ["task=123"]),
    ("backend None", lambda h: h.env(backend=None), TypeError, ["backend", "NoneType"]),
    ("store a folder", lambda h: h.env(store=str(h.folder)), StoreError, ["a folder", "another file"]),
    ("store a number", lambda h: h.env(store=123), ValueError, ["store=123", "file path"]),
    ("store under a file", lambda h: h.env(store=str(Path(h.file("notes.txt", "x")[7:]) / "trials.db")),
     StoreError, ["cannot be created", "writable folder"]),
    ("store a pipe", lambda h: h.env(store=fifo(h)), StoreError, ["not a regular file", "another file"]),
    ("device tpu", lambda h: h.env(device="tpu"), ValueError, ["device='tpu'", "'cpu'"]),
    ("reward a list", lambda h: h.env(reward=["score"]), ValueError, ["reward=['score']", "'improvement'"]),
    # (gym.make itself fails on a render_mode that is no string, before the env sees it)
    ("render_mode a number", lambda h: LegalHPOEnv(render_mode=1), ValueError, ["render_mode=1", "'ansi'"]),
    ("reset options a number", lambda h: h.env().reset(options=5), ValueError, ["options=5", "dict"]),
    ("reset task a list", lambda h: h.env().reset(options={"task": ["x"]}), ValueError, ["reset task ['x']"]),
    ("a task the recorded table lacks", lambda h: gym.make("LegalHPO-v0", task="jec_qa"),
     ValueError, ["'jec_qa'", "backend='head'"]),
    ("a typo on the recorded table", lambda h: gym.make("LegalHPO-v0", task="unfair-tos"),
     ValueError, ["'unfair-tos'", "unfair_tos", "custom:"]),
    ("live kwargs on the recorded table", lambda h: gym.make("LegalHPO-v0", store=str(h.store)),
     ValueError, ["would ignore store=", "backend='head'"]),
    ("fidelity on the recorded table", lambda h: gym.make("LegalHPO-v0", max_train=100),
     ValueError, ["max_train", "cannot honour"]),
    # actions
    ("direct NaN", lambda h: h.step("direct", [0.0] * (K - 1) + [math.nan]), ValueError, ["action space"]),
    ("direct inf", lambda h: h.step("direct", [math.inf] * K), ValueError, ["action space"]),
    ("direct huge", lambda h: h.step("direct", np.full(K, 1e30)), ValueError, ["action space"]),
    ("direct text", lambda h: h.step("direct", ["0.5"] * K), ValueError, ["action space"]),
    ("direct dict", lambda h: h.step("direct", {"learning_rate": 0.5}), ValueError, ["action space"]),
    ("direct None", lambda h: h.step("direct", None), ValueError, ["action space"]),
    ("direct ragged", lambda h: h.step("direct", [[0.0], [0.0, 0.0]]), ValueError, ["action space"]),
    ("direct column", lambda h: h.step("direct", np.zeros((K, 1))), ValueError, ["action space"]),
    ("direct complex", lambda h: h.step("direct", np.full(K, 0.5j)), ValueError, ["action space"]),
    ("direct huge int", lambda h: h.step("direct", [2**70] * K), ValueError, ["action space"]),
    ("delta floats", lambda h: h.step("delta", [1.0] * K), ValueError, ["action space"]),
    ("delta ragged", lambda h: h.step("delta", [[1], [1, 1]]), ValueError, ["action space"]),
    ("delta huge", lambda h: h.step("delta", [2**70] * K), ValueError, ["action space"]),
    ("single huge", lambda h: h.step("single", 2**70), ValueError, ["action space"]),
    ("single text", lambda h: h.step("single", "3"), ValueError, ["action space"]),
    ("single matrix", lambda h: h.step("single", np.array([[1]])), ValueError, ["action space"]),
    ("single None", lambda h: h.step("single", None), ValueError, ["action space"]),
]


@pytest.fixture
def hostile(tmp_path, tiny_task, tiny_model) -> Hostile:
    folder = tmp_path / "a folder"  # (a space in the path, too)
    folder.mkdir()
    h = Hostile(folder, tiny_task, tiny_model, tmp_path / "trials.db")
    store = TrialStore(h.store)
    for i in range(3):
        store.put(f"k{i}", make_result(i))
    store.close()
    return h


def snapshot(folder: Path, hostile: Hostile) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (size, mtime) but the store (checked on its own, with
    the sidecars SQLite keeps while it is open) and the hostile input files themselves."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(hostile.store.name) and hostile.folder / "data" not in p.parents
    }


def test_the_hostile_suite_is_large_enough():
    assert len(HOSTILE) >= 30 and len({i for i, *_ in HOSTILE}) == len(HOSTILE)
    report_figure("hostile_inputs", len(HOSTILE))


@pytest.mark.parametrize(("case", "error", "fragments"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_a_clear_typed_error(hostile, tmp_path, case, error, fragments):
    before = snapshot(tmp_path, hostile)
    with pytest.raises(error) as info:
        case(hostile)
    assert isinstance(info.value, (ValueError, TypeError, StoreError)), type(info.value)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    gc.collect()  # close what the failed call opened
    assert snapshot(tmp_path, hostile) == before  # no partial (or any other) file left
    with sqlite3.connect(hostile.store) as conn:  # the store is intact
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = TrialStore(hostile.store)
    assert sorted(r.seed for r in store.results()) == [0, 1, 2] and store.get("k1") == make_result(1, from_store=True)


def test_an_env_survives_its_rejected_actions(hostile):
    """A rejected action changes nothing: the episode goes on as if it was never sent."""
    env = hostile.env(action_mode="direct", budget=2)
    obs, _ = env.reset(seed=0)
    for bad in ([math.nan] * K, None, "x", [2.0] * K):
        with pytest.raises(ValueError):
            env.step(bad)
    assert env.unwrapped._trials == 0 and np.array_equal(env.unwrapped._observation(), obs)
    _, _, terminated, _, info = env.step(np.zeros(K, dtype=np.float32))
    assert info["trials"] == 1 and not terminated


def test_a_lone_surrogate_in_custom_data_trains(hostile):
    """JSON spells a lone surrogate that no tokenizer encodes: it is replaced, not a TypeError."""
    lines = [json.dumps({"text": f"clause {i} about the service \ud800", "label": "AB"[i % 2]}) for i in range(30)]
    env = hostile.env(task=hostile.file("s.jsonl", "\n".join(lines) + "\n"))
    env.reset(seed=0)
    assert np.isfinite(env.step(np.ones(K, dtype=np.int64))[1])


def test_a_huge_field_costs_what_max_length_keeps(hostile):
    """One 20 MB field: tokenised after a cut far beyond max_length, so seconds, not minutes."""
    import time

    from legal_hpo_env.backends.models import encode_task
    from legal_hpo_env.tasks import load_task

    text = "clause about the service " * (20_000_000 // 25)
    rows_ = "text,label\n" + f"{text},A\n" + rows()
    task = load_task(hostile.file("huge.csv", rows_))
    start = time.perf_counter()
    encoded = encode_task(task, hostile.model, 32)
    assert time.perf_counter() - start < 30
    assert max(len(ids) for split in encoded.values() for ids in split["input_ids"]) <= 32
