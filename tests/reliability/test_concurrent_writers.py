"""Reliability, concurrent writers: processes writing one trial store at once, with a
reader decoding it meanwhile, lose nothing and never see it locked.

The write throughput is printed: run with ``-s`` to see it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("torch")

from legal_hpo_env.store import TrialStore  # noqa: E402
from support import make_result, report_figure, subprocess_env  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

WRITER = textwrap.dedent(
    """
    import sys, time
    from support import make_result
    from legal_hpo_env.store import TrialStore
    path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:  # start together, to collide on creating the schema
        time.sleep(0.005)
    store = TrialStore(path)
    for i in range(n):
        store.put(f"w{worker}-{i}", make_result(i, seed=worker * 100_000 + i, dev_score=i / n))
        if i % 25 == 0:  # read while the others write
            assert store.get(f"w{worker}-{i}").seed == worker * 100_000 + i
            assert len(store) >= i + 1
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from legal_hpo_env.store import TrialStore
    path, start, total = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    while time.time() < start:
        time.sleep(0.005)
    store, seen, reads = TrialStore(path), 0, 0
    while seen < total and time.time() < start + 240:
        seen = sum(1 for _ in store.results())  # decodes every record written so far
        reads += 1
    print(reads, seen)
    """
)


def test_concurrent_writers_lose_nothing(tmp_path):
    writers, per_writer = 4, 500
    path = tmp_path / "shared.db"  # does not exist yet: the writers race to create it
    start = time.time() + 4.0  # time for every interpreter to start
    env = subprocess_env(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(per_writer), str(start)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(start), str(writers * per_writer)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in procs + [reader]:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "locked" not in err, err
    seconds = time.time() - start
    store = TrialStore(path)
    assert len(store) == writers * per_writer
    everything = list(store.results())  # every record readable
    expected = sorted(w * 100_000 + i for w in range(writers) for i in range(per_writer))
    assert sorted(r.seed for r in everything) == expected
    for w in range(writers):
        for i in range(0, per_writer, 7):
            got = store.get(f"w{w}-{i}")
            assert got == dataclasses.replace(make_result(i, seed=w * 100_000 + i, dev_score=i / per_writer),
                                              from_store=True)
    with sqlite3.connect(path) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM trials")]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(keys) == len(set(keys)) == writers * per_writer
    report_figure("concurrent_writers", {"processes": writers, "trials_each": per_writer, "seconds": round(seconds, 1),
                                         "trials_per_second": round(writers * per_writer / seconds)})
    print(f"\n[concurrency] {writers} processes x {per_writer} trials, with a reader decoding the whole store "
          f"meanwhile, in {seconds:.1f}s: {writers * per_writer / seconds:.0f} trials/s")
