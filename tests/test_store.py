"""The trial store: round trips, sharing between objects and processes, corrupt files."""

from __future__ import annotations

import dataclasses
import pickle
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from legal_hpo_env.store import SCHEMA_VERSION, StoreError, TrialStore, trial_key
from support import TESTS, key_of, make_result, sidecars


def test_put_get_round_trip(tmp_path):
    store = TrialStore(tmp_path / "sub" / "trials.db")  # the folder is created
    result = make_result(1)
    key = key_of(result)
    assert store.get(key) is None and key not in store and len(store) == 0
    store.put(key, result)
    got = store.get(key)
    assert got == dataclasses.replace(result, from_store=True)
    assert got.from_store and not result.from_store
    assert key in store and len(store) == 1


def test_trial_key_depends_on_every_part():
    base = ["t", "h", "head", "1", "m", {"a": 1, "b": 2}, {"max_train": None}, 0]
    key = trial_key(*base)
    assert len(key) == 64 and key == trial_key(*base)
    assert trial_key("t", "h", "head", "1", "m", {"b": 2, "a": 1}, {"max_train": None}, 0) == key  # key order
    for i, other in enumerate(["u", "g", "finetune", "2", "n", {"a": 1, "b": 3}, {"max_train": 10}, 1]):
        changed = list(base)
        changed[i] = other
        assert trial_key(*changed) != key, i


def test_reopen_from_another_object(tmp_path):
    path = tmp_path / "trials.db"
    first = TrialStore(path)
    results = [make_result(i) for i in range(3)] + [make_result(9, task="scotus", backend="finetune")]
    for r in results:
        first.put(key_of(r), r)
    first.close()
    second = TrialStore(path)
    assert len(second) == 4
    for r in results:
        assert second.get(key_of(r)) == dataclasses.replace(r, from_store=True)
    assert [r.seed for r in second.results(task="unfair_tos")] == [0, 1, 2]
    assert [r.seed for r in second.results(backend="finetune")] == [9]
    assert [r.seed for r in second.results(task="scotus", backend="head")] == []
    assert all(r.from_store for r in second.results())
    # A store object open at the same time sees the other's writes.
    late = make_result(5)
    second.put(key_of(late), late)
    assert TrialStore(path).get(key_of(late)) is not None


def test_insert_or_ignore_keeps_the_first(tmp_path):
    store = TrialStore(tmp_path / "trials.db")
    first, second = make_result(1, dev_score=0.5), make_result(1, dev_score=0.9)
    store.put("same-key", first)
    store.put("same-key", second)
    assert len(store) == 1
    assert store.get("same-key").dev_score == 0.5


def test_store_pickles(tmp_path):
    store = TrialStore(tmp_path / "trials.db")
    r = make_result(3)
    store.put(key_of(r), r)  # the connection is open now
    copy = pickle.loads(pickle.dumps(store))
    assert copy.path == store.path
    assert copy.get(key_of(r)) == dataclasses.replace(r, from_store=True)
    r2 = make_result(4)
    copy.put(key_of(r2), r2)
    assert len(store) == 2


def test_diverged_result_round_trips(tmp_path):
    store = TrialStore(tmp_path / "trials.db")
    r = make_result(1, diverged=True, dev_score=0.0, train_loss=[0.7], dev_curve=[])
    store.put("k", r)
    got = store.get("k")
    assert got.diverged and got.dev_curve == [] and got.train_loss == [0.7] and got.from_store


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_file_is_an_error_and_left_untouched(tmp_path, kind):
    path = tmp_path / "trials.db"
    if kind == "garbage":
        path.write_bytes(b"this is not a database, just some text\n" * 200)
    else:
        store = TrialStore(path)
        for i in range(200):
            store.put(f"k{i}", make_result(i))
        store.close()
        whole = path.read_bytes()
        assert len(whole) > 8192 and not sidecars(path)
        path.write_bytes(whole[: len(whole) // 2])
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        store = TrialStore(path)
        len(store)
        list(store.results())
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert not sidecars(path)


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "trials.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE trials (key TEXT PRIMARY KEY)")
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer") as info:
        TrialStore(path)
    assert str(path) in str(info.value) and "99" in str(info.value) and str(SCHEMA_VERSION) in str(info.value)
    assert path.read_bytes() == before and not sidecars(path)


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="recipes"):
        TrialStore(path)
    assert path.read_bytes() == before and not sidecars(path)


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from support import make_result
    from legal_hpo_env.store import TrialStore
    path, worker = sys.argv[1], int(sys.argv[2])
    while time.time() < float(sys.argv[4]):  # start together, to collide on creating the schema
        time.sleep(0.005)
    store = TrialStore(path)
    for i in range(100):
        store.put(f"w{worker}-{i}", make_result(worker * 1000 + i))
        if i % 10 == 0:
            store.put(f"shared-{i}", make_result(i, seed=worker))  # every worker writes these keys
    """
)


def test_concurrent_writers(tmp_path):
    import time

    path = tmp_path / "shared.db"  # does not exist yet: the writers race to create it
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(TESTS), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = TrialStore(path)
    assert len(store) == 4 * 100 + 10
    for w in range(4):
        for i in range(100):
            got = store.get(f"w{w}-{i}")
            assert got is not None and got.seed == w * 1000 + i
    shared = [store.get(f"shared-{i}") for i in range(0, 100, 10)]
    assert all(r is not None and r.seed in range(4) for r in shared)
    with sqlite3.connect(path) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM trials")]
    assert len(keys) == len(set(keys)) == 410


def test_an_export_in_chunks_resumes_a_fresh_store(tmp_path):
    """A store's trials as JSON-lines chunks: each chunk holds only new trials, and the
    chunks together rebuild the store on another machine."""
    store = TrialStore(tmp_path / "a.db")
    for i in range(3):
        store.put(f"k{i}", make_result(i))
    first = tmp_path / "runs-000.jsonl.gz"
    assert store.export_jsonl(first) == 3 and TrialStore.exported_keys(first) == {"k0", "k1", "k2"}
    store.put("k3", make_result(3))
    second = tmp_path / "runs-001.jsonl.gz"
    assert store.export_jsonl(second, exclude=TrialStore.exported_keys(first)) == 1
    assert TrialStore.exported_keys(second) == {"k3"}
    assert store.export_jsonl(tmp_path / "runs-002.jsonl.gz", exclude={"k0", "k1", "k2", "k3"}) == 0
    assert not (tmp_path / "runs-002.jsonl.gz").exists()  # nothing new: no chunk
    fresh = TrialStore(tmp_path / "b.db")
    assert fresh.import_jsonl(first) + fresh.import_jsonl(second) == 4
    assert fresh.get("k3") == make_result(3, from_store=True) and len(fresh) == 4
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(StoreError, match="not a readable export"):
        fresh.import_jsonl(tmp_path / "bad.jsonl.gz")
    assert len(fresh) == 4
