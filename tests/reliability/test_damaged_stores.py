"""Reliability, damaged stores: a cut or garbled file, a damaged record, a newer version,
a folder or foreign database, a full disk: each a clear error, never a wrong answer, the
file left as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402,F401  (registers the env)
from legal_hpo_env.cli import main as cli_main  # noqa: E402
from legal_hpo_env.store import StoreError, TrialStore  # noqa: E402
from support import make_result, sidecars  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def full_store(tmp_path) -> tuple[Path, bytes]:
    """A closed store of 300 trials, and its bytes."""
    path = tmp_path / "full.db"
    store = TrialStore(path)
    for i in range(300):
        store.put(f"k{i}", make_result(i))
    store.close()
    assert not sidecars(path)
    return path, path.read_bytes()


def assert_refused(path: Path, *what_to_do: str, operations: Callable[[TrialStore], Any] | None = None) -> None:
    """Opening (and using) the store raises a StoreError naming the file and what to do,
    and leaves the file's bytes as they were."""
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as info:
        store = TrialStore(path)
        if operations is not None:
            operations(store)
    message = str(info.value)
    assert str(path) in message, message
    assert any(w in message for w in what_to_do), message
    if before is not None:
        assert path.read_bytes() == before


def read_everything(store: TrialStore) -> None:
    len(store)
    store.get("k150")
    list(store.results())


@pytest.mark.parametrize("cut", [1, 99, 100, 4095, 4097, "quarter", "half", "last page", "last byte"])
def test_a_store_cut_anywhere_is_refused_untouched(full_store, cut):
    path, whole = full_store
    size = {"quarter": len(whole) // 4, "half": len(whole) // 2, "last page": len(whole) - 4096,
            "last byte": len(whole) - 1}.get(cut, cut)
    path.write_bytes(whole[:size])
    assert_refused(path, "move it aside", operations=read_everything)
    assert not sidecars(path)


def test_garbage_pages_are_an_error_not_a_wrong_answer(full_store):
    path, whole = full_store
    damaged = bytearray(whole)
    middle = len(damaged) // 2
    damaged[middle : middle + 2000] = bytes(b ^ 0xFF for b in damaged[middle : middle + 2000])
    path.write_bytes(bytes(damaged))
    assert_refused(path, "move it aside", operations=read_everything)


def test_a_damaged_record_names_the_trial_and_the_others_stay_readable(full_store):
    path, _ = full_store
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE trials SET result='{\"dev_score\": 0.9' WHERE key='k7'")
        conn.execute("UPDATE trials SET result='{\"dev_score\": 0.9}' WHERE key='k8'")
    store = TrialStore(path)
    for key in ("k7", "k8"):
        with pytest.raises(StoreError) as info:
            store.get(key)
        assert str(path) in str(info.value) and key in str(info.value) and "move it aside" in str(info.value)
    with pytest.raises(StoreError, match="damaged"):
        list(store.results())
    assert store.get("k9").seed == 9 and len(store) == 300


@pytest.mark.parametrize(
    ("field", "value"),
    [("dev_score", float("nan")), ("dev_score", float("inf")), ("dev_score", 5.0), ("test_score", -0.5),
     ("diverged", "no"), ("dev_curve", [0.5, float("nan")]), ("train_loss", [float("inf")]), ("seed", -3),
     ("seconds", float("nan"))],
)
def test_a_record_of_valid_json_but_impossible_values_is_refused_not_returned(full_store, field, value):
    """Valid JSON, wrong content: returned, it would make best nan/inf or every trial diverged."""
    import json

    path, _ = full_store
    record = {**make_result(7).to_dict(), field: value}
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE trials SET result=? WHERE key='k7'", (json.dumps(record),))
    store = TrialStore(path)
    with pytest.raises(StoreError) as info:
        store.get("k7")
    assert "k7" in str(info.value) and field in str(info.value) and "damaged" in str(info.value)
    assert store.get("k8").seed == 8


def test_a_store_locked_by_another_process_fails_within_its_timeout(tmp_path):
    """Another process inside BEGIN EXCLUSIVE: an error after the store's timeout, not 20 of them."""
    import time

    path = tmp_path / "locked.db"
    TrialStore(path).put("k0", make_result(0))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = TrialStore(path, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(StoreError, match=r"locked by another process for 1 s"):
            store.put("k1", make_result(1))
        assert time.monotonic() - start < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    TrialStore(path).put("k1", make_result(1))  # free again: the store works


@pytest.mark.parametrize("user_path", ["gym.make", "cli"])
def test_a_store_from_a_newer_version_is_refused_where_users_meet_it(user_path, tmp_path, env_kwargs, capsys):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trials (key TEXT PRIMARY KEY, shiny_new_column BLOB)")
        conn.execute("PRAGMA user_version=7")
    before = path.read_bytes()
    if user_path == "gym.make":
        with pytest.raises(StoreError) as info:
            gym.make("LegalHPO-v0", **env_kwargs, store=str(path))
        message = str(info.value)
    else:
        task, model = env_kwargs["task"], env_kwargs["model"]
        code = cli_main(["evaluate", "--task", task, "--model", model, "--epochs", "1", "--store", str(path)])
        assert code == 2
        message = capsys.readouterr().err
    assert str(path) in message and "newer" in message and "upgrade" in message
    assert path.read_bytes() == before and not sidecars(path)


def test_a_folder_or_foreign_database_as_store(tmp_path):
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    assert_refused(folder, "another file")
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    assert_refused(other, "another file")


def test_a_full_disk_keeps_the_stored_trials_and_says_so(tmp_path):
    """SQLite's page limit stands in for a full disk: the same SQLITE_FULL error."""
    path = tmp_path / "trials.db"
    store = TrialStore(path)
    for i in range(5):
        store.put(f"k{i}", make_result(i))
    conn = store._connection()
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(StoreError) as info:
        for i in range(5, 500):
            store.put(f"k{i}", make_result(i))
    message = str(info.value)
    assert str(path) in message and "disk is full" in message and "intact" in message
    store.close()
    reopened = TrialStore(path)  # space freed: everything stored before is there, and writes work
    stored = len(reopened)
    assert stored >= 5 and [r.seed for r in reopened.results()] == list(range(stored))
    reopened.put("after", make_result(999))
    assert reopened.get("after").seed == 999
