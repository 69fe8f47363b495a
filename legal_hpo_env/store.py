"""The trial store: every finished trial, persisted, shared between processes.

SQLite (standard library) in WAL mode: many readers and one writer at a time, with a
busy timeout so that concurrent writers wait instead of failing. A trial is keyed by
everything that determines its result: task, data hash, backend and its code version,
model, configuration, fidelity and seed. Asking again for a stored trial returns it
without training.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from legal_hpo_env.backends.base import TrialResult

__all__ = ["TrialStore", "StoreError", "trial_key", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    backend TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dev_score REAL NOT NULL,
    diverged INTEGER NOT NULL,
    created REAL NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_task ON trials (task, backend);
"""


class StoreError(RuntimeError):
    """The store file is unreadable, corrupt, or from another schema version."""


def trial_key(
    task: str, data_hash: str, backend: str, code_version: str, model: str, config: dict, fidelity: dict, seed: int
) -> str:
    """A stable hash of everything that determines a trial's result."""
    payload = json.dumps(
        [task, data_hash, backend, code_version, model, config, fidelity, int(seed)], sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _damage(path: Path) -> str | None:
    """Why a file cannot be a whole SQLite database, judged from its size and header, or ``None``.

    ``None`` is for a whole-looking database, an empty or missing file.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # a new store
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        # SQLite itself takes a file of a few bytes for an empty database, and overwrites it
        return f"not an SQLite database: {size} bytes without the SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid only when "version valid for" matches the change counter
    # (SQLite versions before 3.7.0 left it stale).
    if header[24:28] == header[92:96] and size < page_size * pages:
        return f"truncated: {size} bytes where its header says {page_size * pages}"
    return None


class TrialStore:
    """A SQLite file of trial results, safe to share between processes.

    Args:
        path: the database file; created (with its folder) if absent.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"a trial store is a file path, not {type(path).__name__}: {path!r}.")
        self.path = Path(path).expanduser()
        #: seconds to wait for another process's lock before giving up, in total
        self.timeout = float(timeout)
        if self.path.exists() and not self.path.is_file():  # a folder, a FIFO, a device: opening one hangs or fails
            what = "a folder" if self.path.is_dir() else "not a regular file (a pipe or a device)"
            raise StoreError(f"trial store {self.path} is {what}: point the store to another file.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"trial store {self.path}: its folder cannot be created ({e.strerror}: {e.filename}); "
                "point the store to a writable folder."
            ) from e
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._check_schema()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._pid, self._conn = state["path"], -1, None
        self.timeout = state.get("timeout", 60.0)

    def _connection(self) -> sqlite3.Connection:
        # One connection per process: a connection inherited across fork is not safe.
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                # WAL is a property of the file, set once by the first process. Switching to it
                # takes an exclusive lock that SQLite may refuse at once, without waiting for
                # the busy timeout, while other processes open the same new file: retry.
                if self._retry(lambda: conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.execute("PRAGMA synchronous=NORMAL")
            except StoreError:
                conn.close()
                raise
            except sqlite3.DatabaseError as e:
                conn.close()
                raise self._error(e) from e
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _corrupt(self, error: Exception) -> StoreError:
        return StoreError(
            f"trial store {self.path} is not a readable trial database ({error}). It was left untouched: "
            "move it aside to start a new store, or point the store to another file."
        )

    def _error(self, error: sqlite3.Error) -> StoreError:
        """The user-facing error of an SQLite failure: what happened to which file, and what to do."""
        text = str(error)
        if "full" in text:  # SQLITE_FULL: the disk (or a quota) is full
            return StoreError(
                f"trial store {self.path}: the disk is full ({text}); this trial was not stored, the trials "
                "stored before it are intact. Free some space (or point the store to another disk) and rerun: "
                "stored trials are not trained again."
            )
        if "locked" in text or "busy" in text:
            return StoreError(
                f"trial store {self.path} stayed locked by another process for {self.timeout:g} s ({text}): retry, "
                "and check that no stuck process holds it open."
            )
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return StoreError(
                f"trial store {self.path} cannot be opened for writing ({text}): check that the path is a file "
                "in a writable folder, or point the store to another file."
            )
        return self._corrupt(error)

    def _check_schema(self) -> None:
        # Read the schema on a plain connection before switching the file to WAL mode, so
        # that a file this code must refuse (newer schema, another program's database) is
        # really left untouched: enabling WAL rewrites the header and adds -wal/-shm files.
        self._check_intact()
        try:
            probe = sqlite3.connect(self.path, timeout=self.timeout)
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            version = probe.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        finally:
            probe.close()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"trial store {self.path} was written by a newer legal-hpo-env (schema {version}, this one reads "
                f"{SCHEMA_VERSION}): upgrade the package, or use another store file. Nothing was changed."
            )
        if tables and "trials" not in tables:
            raise StoreError(
                f"trial store {self.path} is an SQLite file of something else (tables {sorted(tables)}). It was "
                "left untouched: point the store to another file."
            )
        conn = self._connection()
        if not tables:
            self._retry(lambda: conn.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};"))

    def _check_intact(self) -> None:
        """Refuse a file cut short (a copy or a write interrupted, a full disk).

        SQLite reads a file shorter than its header says without complaint until a query
        reaches a missing page, and takes a file of a few bytes for an empty database,
        which it then overwrites; the header's page size and page count tell at once.

        Only a file without a write-ahead log is checked: while a WAL is live, another
        process's checkpoint can update the header an instant before it extends the file.
        """
        if Path(f"{self.path}-wal").exists():
            return
        try:
            damage = _damage(self.path)
            if damage:  # confirm: real damage does not go away
                time.sleep(0.1)
                damage = None if Path(f"{self.path}-wal").exists() else _damage(self.path)
        except IsADirectoryError as e:
            raise self._error(sqlite3.OperationalError(f"unable to open database file: {e.strerror}")) from e
        except OSError as e:
            raise StoreError(f"trial store {self.path} cannot be read ({e.strerror}): check the path.") from e
        if damage:
            raise self._corrupt(sqlite3.DatabaseError(damage))

    def _retry(self, operation: Any, attempts: int = 20) -> Any:
        # The busy timeout covers most contention; WAL checkpoints can still report
        # "locked" at once, which must never reach the user: retried, within the same
        # total time. A lock held past the timeout (another process in a long exclusive
        # transaction) is reported then, not after 20 more timeouts. Any other SQLite
        # failure becomes a StoreError that names the file and says what to do.
        deadline = time.monotonic() + self.timeout
        for attempt in range(attempts):
            try:
                return operation()
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if busy and attempt < attempts - 1 and time.monotonic() < deadline:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise self._error(e) from e
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e

    def _decode(self, key: str | None, data: str) -> TrialResult:
        try:
            return TrialResult.from_dict(json.loads(data), from_store=True)
        except (ValueError, TypeError, AttributeError) as e:
            where = "a record" if key is None else f"the record of trial {key}"
            raise StoreError(
                f"trial store {self.path}: {where} is damaged ({e}). The file was left untouched: move it aside "
                "to start a new store (its other trials can still be read with the sqlite3 tool)."
            ) from e

    def get(self, key: str) -> TrialResult | None:
        row = self._retry(
            lambda: self._connection().execute("SELECT result FROM trials WHERE key=?", (key,)).fetchone()
        )
        return None if row is None else self._decode(key, row[0])

    def put(self, key: str, result: TrialResult) -> None:
        """Insert a finished trial; a trial already stored under ``key`` is kept as it is."""
        data = json.dumps(result.to_dict())
        self._retry(
            lambda: self._connection().execute(
                "INSERT OR IGNORE INTO trials (key, task, backend, seed, dev_score, diverged, created, result) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, result.task, result.backend, result.seed, result.dev_score, int(result.diverged), time.time(),
                 data),
            )
        )

    def __len__(self) -> int:
        return self._retry(lambda: self._connection().execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def __contains__(self, key: str) -> bool:
        return self._retry(
            lambda: self._connection().execute("SELECT 1 FROM trials WHERE key=?", (key,)).fetchone() is not None
        )

    def results(self, task: str | None = None, backend: str | None = None) -> Iterator[TrialResult]:
        """Every stored result, optionally of one task and backend, oldest first."""
        query, args = "SELECT key, result FROM trials", []
        clauses = []
        if task is not None:
            clauses.append("task=?")
            args.append(task)
        if backend is not None:
            clauses.append("backend=?")
            args.append(backend)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._retry(lambda: self._connection().execute(query + " ORDER BY created", args).fetchall())
        for (key, data) in rows:
            yield self._decode(key, data)

    def items(self, backend: str | None = None) -> Iterator[tuple[str, TrialResult]]:
        """Every stored ``(key, result)``, optionally of one backend, oldest first."""
        query, args = "SELECT key, result FROM trials", []
        if backend is not None:
            query, args = query + " WHERE backend=?", [backend]
        rows = self._retry(lambda: self._connection().execute(query + " ORDER BY created, key", args).fetchall())
        for key, data in rows:
            yield key, self._decode(key, data)

    def export_jsonl(
        self, path: str | os.PathLike, backend: str | None = None, exclude: set[str] | frozenset[str] = frozenset()
    ) -> int:
        """Write the stored trials (optionally of one backend) as gzipped JSON lines, atomically; return how many.

        Each line is ``{"key": ..., "result": ...}``. A compact, portable copy of a store:
        another machine resumes from it with :meth:`import_jsonl`. Trials whose key is in
        ``exclude`` are left out (those an earlier export holds), and nothing is written
        when none is left.
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        count = 0
        # mtime=0: the same trials give the same bytes, so a copy under version control
        # changes only when trials are added
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            for key, result in self.items(backend):
                if key in exclude:
                    continue
                f.write((json.dumps({"key": key, "result": result.to_dict()}, sort_keys=True) + "\n").encode())
                count += 1
        if count:
            os.replace(tmp, path)
        else:
            tmp.unlink()
        return count

    @staticmethod
    def exported_keys(path: str | os.PathLike) -> set[str]:
        """The keys of the trials in a file written by :meth:`export_jsonl`."""
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return {json.loads(line)["key"] for line in f if line.strip()}

    def import_jsonl(self, path: str | os.PathLike) -> int:
        """Add the trials of a file written by :meth:`export_jsonl`; return how many were read.

        Trials already stored are kept as they are.
        """
        count = 0
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                        raise ValueError(f"line {n} is not a {{'key', 'result'}} record")
                    self.put(record["key"], self._decode(record["key"], json.dumps(record.get("result"))))
                    count += 1
        except (OSError, EOFError, ValueError) as e:
            raise StoreError(f"{path} is not a readable export of trials ({e}); the store keeps what it had.") from e
        return count

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
