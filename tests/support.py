"""Helpers and constants shared by the tests (``from support import ...``; fixtures live in conftest.py).

``tests`` is on pytest's pythonpath, so every test file, in any folder, imports this
module by name; child Pythons started by a test import it with ``tests`` on their
PYTHONPATH (see ``subprocess_env``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from legal_hpo_env.backends import Fidelity, TrialResult
from legal_hpo_env.backends.recorded import write_table
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE, HyperParams
from legal_hpo_env.store import trial_key

#: The checkout's root, and the folder of the tests (this module's).
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
#: The real data, where CI and developers have it (never inside the repository).
REAL_DATA = Path(os.environ.get("LEGAL_HPO_DATA") or REPO.parent / "shared" / "data" / "legal")

#: The vocabulary of the tiny model and of the tiny datasets.
WORDS = (
    "the a of to and in is for by any we you our may this terms agreement party court shall not "
    "service user content right law arbitration dispute liability terminate change remove overrule "
    "precedent held case judgment affirmed reversed contract confidential information receiving "
    "disclosing return destroy 中 国 法 院 判 决 原 告 被 告 是 否 离 婚"
).split()

#: A short maximum length: the tiny model trains in a fraction of a second.
FAST = Fidelity(max_length=32)


# -- data --------------------------------------------------------------------------


def write_classification_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A small learnable 3-class task: the label is signalled by a keyword."""
    import random

    rng = random.Random(seed)
    keywords = {"arbitration": "Arbitration", "terminate": "Termination", "service": "Other"}
    lines = ["text,label"]
    for i in range(n):
        word = list(keywords)[i % 3]
        filler = " ".join(rng.choice(WORDS[:20]) for _ in range(rng.randint(3, 12)))
        lines.append(f'"{filler} {word} {filler}",{keywords[word]}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def real_data_available() -> bool:
    return (REAL_DATA / "legalbench" / "unfair_tos.tsv").is_file()


requires_real_data = pytest.mark.skipif(
    not real_data_available(), reason=f"real legal data not found at {REAL_DATA} (set LEGAL_HPO_DATA)"
)


# -- trial results and stores ------------------------------------------------------


def make_result(i: int = 0, task: str = "unfair_tos", backend: str = "head", **changes) -> TrialResult:
    result = TrialResult(
        task=task,
        backend=backend,
        model="sentence-transformers/all-MiniLM-L6-v2",
        config={"learning_rate": 3e-5, "batch_size": 8, "epochs": 2, "class_weighting": "none"},
        fidelity={"max_train": None, "max_length": 128},
        seed=i,
        metric="macro_f1",
        dev_curve=[0.25 + i / 10**6, 0.5],
        train_loss=[1.5, 0.75],
        selected_epoch=2,
        dev_score=0.5,
        test_score=0.4375,
        dev_accuracy=0.875,
        dev_macro_f1=0.5,
        test_accuracy=0.8125,
        test_macro_f1=0.4375,
        diverged=False,
        seconds=1.25,
        sizes={"train": 100, "dev": 20, "test": 20},
        data_hash="0123456789abcdef",
        code_version="0.1.0+head.1",
        extra={"label_names": ["a", "b"], "task_meta": {"family": 0.0}},
    )
    return dataclasses.replace(result, **changes)


def key_of(result: TrialResult) -> str:
    return trial_key(
        result.task, result.data_hash, result.backend, result.code_version, result.model, result.config,
        result.fidelity, result.seed,
    )


def sidecars(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path)


def recorded_table(path: Path) -> Path:
    """A small recorded table: 3 learning rates x 2 batch sizes x 2 weightings x 2 seeds;
    the highest learning rate diverges, at batch 4 already in its first epoch."""
    results = []
    for lr, batch, weighting, seed in itertools.product((1e-5, 1e-4, 1e-2), (4, 16), ("none", "balanced"), (0, 1)):
        base = 0.3 + 0.4 * (lr == 1e-4) + 0.05 * (batch == 16) + 0.02 * (weighting == "balanced") + 0.01 * seed
        curve = [round(base - 0.1, 4), round(base, 4), round(base - 0.05, 4)]
        diverged = lr == 1e-2
        if diverged:
            curve = [] if batch == 4 else curve[:1]
        config = HyperParams(learning_rate=lr, batch_size=batch, class_weighting=weighting, epochs=3)
        curves = {f"{s}_{m}": list(curve) for s in ("dev", "test") for m in ("accuracy", "macro_f1")}
        results.append(TrialResult(
            task="t", backend="head", model="m", config=config.to_dict(), fidelity=FAST.to_dict(), seed=seed,
            metric="macro_f1", dev_curve=curve, train_loss=[1.0] * len(curve), selected_epoch=1,
            dev_score=max(curve, default=0.0), test_score=0.0, dev_accuracy=0.0, dev_macro_f1=0.0, test_accuracy=0.0,
            test_macro_f1=0.0, diverged=diverged, seconds=12.0, sizes={"train": 400, "dev": 80, "test": 80},
            data_hash="h", code_version="t",
            extra={"curves": curves, "task_meta": {"family": 0.0, "train_size": 400.0, "num_labels": 3.0,
                                                   "mean_chars": 120.0}},
        ))
    return write_table(results, {"note": "reliability tests"}, path, version=1)


# -- child processes ---------------------------------------------------------------


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child Python: this checkout importable, its own feature cache,
    one torch thread (the machine is small and shared)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "LEGAL_HPO_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }


#: Where the reliability tests report their measured figures (``benchmarks/reliability.py``
#: sets it and writes them to ``benchmarks/results/reliability.json``); unset: nowhere.
FIGURES_ENV_VAR = "LEGAL_HPO_FIGURES"


def report_figure(name: str, value: Any) -> None:
    """Record a figure a test measured, for the reliability benchmark's results file."""
    path = os.environ.get(FIGURES_ENV_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value}) + "\n")


# -- recorded learning curves ------------------------------------------------------

#: The task of :func:`curve_runs`, and its descriptors.
CURVE_TASK = "synthetic"
CURVE_META = {"family": 0.0, "train_size": 1000.0, "num_labels": 2.0, "mean_chars": 100.0}


def learning_curve(i: int, epochs: int, seed: int) -> list[float]:
    """Dev scores per epoch at learning-rate index i: a bump peaked at lr 1e-4 that grows with epochs."""
    return [0.2 + 0.2 * k * math.exp(-0.5 * ((i - 4) / 1.5) ** 2) + 0.01 * seed for k in range(1, epochs + 1)]


def curve_runs(task: str = CURVE_TASK, recorded_epochs: int = 3) -> list[TrialResult]:
    """Recorded runs of every learning rate (two seeds), scored after each of ``recorded_epochs`` epochs."""
    runs = []
    for i, lr in enumerate(SPACE["learning_rate"].grid):
        for seed in (0, 1):
            dev = learning_curve(i, recorded_epochs, seed)
            test = [d - 0.02 for d in dev]
            config = DEFAULT_RECIPE.replace(learning_rate=lr, epochs=recorded_epochs)
            runs.append(TrialResult(
                task=task, backend="head", model="m", config=config.to_dict(), fidelity=FAST.to_dict(), seed=seed,
                metric="macro_f1", dev_curve=dev, train_loss=[0.5] * len(dev), selected_epoch=len(dev),
                dev_score=max(dev), test_score=max(test), dev_accuracy=0.0, dev_macro_f1=0.0, test_accuracy=0.0,
                test_macro_f1=0.0, diverged=False, seconds=3.0, sizes={"train": 1000, "dev": 100, "test": 100},
                data_hash="abc", code_version="t",
                extra={"task_meta": CURVE_META, "curves": {"dev_accuracy": dev, "dev_macro_f1": dev,
                                                           "test_accuracy": test, "test_macro_f1": test}},
            ))
    return runs


def curve_table():
    """A table backend of :func:`curve_runs`: every learning rate at 1, 2 and 3 epochs (each run's first epochs)."""
    results = []
    for r in curve_runs():
        for epochs in (1, 2, 3):
            dev = r.dev_curve[:epochs]
            results.append(TrialResult.from_dict({
                **r.to_dict(), "config": {**r.config, "epochs": epochs}, "dev_curve": dev, "dev_score": max(dev),
                "test_score": max(dev) - 0.02, "seconds": 1.0 * epochs,
            }))
    from legal_hpo_env.backends.table import TableBackend

    return TableBackend(results, meta={CURVE_TASK: CURVE_META})
