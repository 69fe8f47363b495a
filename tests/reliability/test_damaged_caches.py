"""Reliability, damaged feature caches: detected, recomputed with a warning, never used."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from legal_hpo_env.backends import make_backend  # noqa: E402
from legal_hpo_env.backends.head import _MEMORY, cache_dir  # noqa: E402
from legal_hpo_env.space import HyperParams  # noqa: E402
from legal_hpo_env.tasks import load_task  # noqa: E402
from support import FAST  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")
CONFIG = HyperParams(learning_rate=1e-3, epochs=1, batch_size=16)


def first_trial(task, tiny_model):
    head = make_backend("head", model=tiny_model, device="cpu")
    return head, head.evaluate(task, CONFIG, FAST, seed=0)


def damage(path, how: str) -> None:
    with np.load(path) as data:
        features = {k: data[k].copy() for k in data.files}
    if how == "nan":
        features["dev"][0, 0] = np.nan
    elif how == "zeros":
        features["train"][:] = 0.0
    elif how == "wrong width":
        features["test"] = features["test"][:, :-1]
    elif how == "wrong rows":
        features["train"] = features["train"][:-3]
    np.savez(path, **features)


@pytest.mark.parametrize("how", ["nan", "zeros", "wrong width", "wrong rows", "garbage"])
def test_a_damaged_feature_cache_is_recomputed_never_used(tiny_task, tiny_model, how):
    task = load_task(tiny_task)
    head, clean = first_trial(task, tiny_model)
    (path,) = (cache_dir() / "features").glob("*.npz")
    if how == "garbage":
        path.write_bytes(os.urandom(2048))
    else:
        damage(path, how)
    _MEMORY.clear()  # a new process: only the disk cache
    with pytest.warns(UserWarning, match="is damaged"):
        again = head.evaluate(task, CONFIG, FAST, seed=0)
    assert again.dev_curve == clean.dev_curve and again.test_score == clean.test_score
    with np.load(path) as data:  # the cache was rewritten whole
        for split in ("train", "dev", "test"):
            assert np.isfinite(data[split]).all() and len(data[split]) == len(getattr(task, split))


def test_a_write_killed_midway_leaves_no_temporary_file_behind(tiny_task, tiny_model):
    task = load_task(tiny_task)
    first_trial(task, tiny_model)
    (path,) = (cache_dir() / "features").glob("*.npz")
    # the temporary file of a write whose process was SIGKILLed (a pid that no longer runs)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = path.with_suffix(f".{int(dead.stdout)}.tmp.npz")
    stale.write_bytes(b"half a file")
    path.unlink()
    _MEMORY.clear()
    first_trial(task, tiny_model)  # recomputes and writes the cache again
    assert path.is_file() and not stale.exists()
