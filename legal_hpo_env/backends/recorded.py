"""The ``recorded`` backend: real fine-tuning runs, recorded once, replayed in microseconds.

A recorded table (package data, ``legal_hpo_env/recorded/<fidelity>-v<N>.json.gz``) holds,
for every task, configuration and seed of a grid, the dev and test metrics after every
epoch, the train loss and the seconds the run took, with metadata saying exactly how
it was recorded. Replaying needs no torch, no model and no data.

The epoch fidelity reads the learning curve: a configuration with ``epochs=e`` replays
the first ``e`` epochs of the recorded run (its best dev epoch among them, and that
epoch's test score), as LCBench-style benchmarks do. The run was trained with a learning
rate schedule for its full length, which the metadata states.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

from legal_hpo_env.backends.base import TrialResult, scored_result
from legal_hpo_env.backends.table import TableBackend
from legal_hpo_env.space import SPACE

__all__ = ["RecordedBackend", "write_table", "dump_table", "read_table", "available_tables", "TABLE_FORMAT"]

TABLE_FORMAT = "legal-hpo-recorded-table"
_COLUMNS = [*SPACE.names, "seed", "dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1", "train_loss",
            "seconds", "diverged"]


def write_table(
    results: Iterable[TrialResult], metadata: dict[str, Any], path: str | os.PathLike, version: int
) -> Path:
    """Write recorded runs (each with per-epoch curves) as a compact gzipped JSON table."""
    tasks: dict[str, dict[str, Any]] = {}
    for r in sorted(results, key=lambda r: (r.task, json.dumps(r.config, sort_keys=True), r.seed)):
        curves = r.extra.get("curves")
        if curves is None:
            raise ValueError(f"run of {r.task} {r.config} has no per-epoch test scores: record with test_each_epoch.")
        entry = tasks.setdefault(
            r.task,
            {"metric": r.metric, "task_meta": r.extra.get("task_meta"), "label_names": r.extra.get("label_names"),
             "sizes": r.sizes, "data_hash": r.data_hash, "model": r.model, "fidelity": r.fidelity, "rows": []},
        )
        row = [r.config[name] for name in SPACE.names] + [r.seed]
        row += [_rounded(curves[k]) for k in ("dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1")]
        row += [_rounded(r.train_loss), round(r.seconds, 3), r.diverged]
        entry["rows"].append(row)
    table = {"format": TABLE_FORMAT, "version": version, "columns": _COLUMNS, "metadata": metadata, "tasks": tasks}
    return dump_table(table, path)


def dump_table(table: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a table's content (as :func:`read_table` returns it) to ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(table, f, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def _rounded(values: list[float]) -> list[float]:
    return [round(float(v), 5) for v in values]


def read_table(path: str | os.PathLike | Traversable) -> dict[str, Any]:
    """A recorded table's content (plain JSON: reading one runs no code)."""
    try:
        with (path.open("rb") if isinstance(path, Traversable) else open(path, "rb")) as raw:
            with gzip.open(raw, "rt", encoding="utf-8") as f:
                table = json.load(f)
    except (OSError, json.JSONDecodeError, EOFError) as e:
        raise ValueError(f"{path} is not a readable recorded table ({e}).") from e
    if table.get("format") != TABLE_FORMAT:
        raise ValueError(f"{path} is not a recorded table (format {table.get('format')!r}).")
    return table


def available_tables() -> dict[str, list[int]]:
    """Packaged tables: fidelity -> versions, newest last."""
    found: dict[str, list[int]] = {}
    folder = resources.files("legal_hpo_env") / "recorded"
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".json.gz") and "-v" in name:
            fidelity, version = name[: -len(".json.gz")].rsplit("-v", 1)
            found.setdefault(fidelity, []).append(int(version))
    return {k: sorted(v) for k, v in found.items()}


def _expand(task: str, entry: dict[str, Any], metadata: dict[str, Any]) -> list[TrialResult]:
    """One TrialResult per recorded run and per epoch fidelity read from its curve."""
    col = {name: i for i, name in enumerate(_COLUMNS)}
    metric = entry["metric"]
    results = []
    for row in entry["rows"]:
        config = {name: row[col[name]] for name in SPACE.names}
        recorded_epochs = config["epochs"]
        curves = {k: row[col[k]] for k in ("dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1")}
        finished = len(curves["dev_accuracy"])
        for epochs in (e for e in SPACE["epochs"].grid if e <= recorded_epochs):
            diverged = row[col["diverged"]] and epochs > finished
            dev_curve = curves[f"dev_{metric}"][:epochs]
            selected = max(range(len(dev_curve)), key=lambda i: dev_curve[i]) if dev_curve else -1
            results.append(
                scored_result(
                    curves,
                    selected,
                    bool(diverged),
                    task=task,
                    backend="recorded",
                    model=entry["model"],
                    config={**config, "epochs": epochs},
                    fidelity=entry["fidelity"],
                    seed=row[col["seed"]],
                    metric=metric,
                    dev_curve=dev_curve,
                    train_loss=row[col["train_loss"]][:epochs],
                    # cost in proportion to the epochs replayed
                    seconds=row[col["seconds"]] * min(epochs, max(finished, 1)) / max(finished, 1),
                    sizes=entry["sizes"],
                    data_hash=entry["data_hash"],
                    # the backend that recorded the run (tables before this field: version 1)
                    code_version=metadata.get("code_version", f"{metadata.get('fidelity')}.1"),
                    extra={"task_meta": entry["task_meta"], "recorded_epochs": recorded_epochs},
                )
            )
    return results


class RecordedBackend(TableBackend):
    """Replay a packaged (or given) recorded table.

    Args:
        fidelity: which packaged table, ``"head"`` or ``"finetune"``; ``"head-v1"`` names a
            version too.
        version: table version; ``None`` for the newest packaged one (or the one the name gives).
        path: a table file instead of a packaged one.
    """

    name = "recorded"
    version = 1

    def __init__(
        self, fidelity: str = "head", version: int | None = None, path: str | os.PathLike | None = None
    ) -> None:
        source: Any = path
        name, _, number = fidelity.rpartition("-v")
        if name and number.isdigit() and version is None:  # "head-v1": the table's file name
            fidelity, version = name, int(number)
        if path is None:
            tables = available_tables()
            if fidelity not in tables:
                raise ValueError(f"no recorded {fidelity!r} table is packaged: recorded tables are {sorted(tables)}.")
            if version is not None and version not in tables[fidelity]:
                raise ValueError(f"no version {version} of the {fidelity!r} table: versions are {tables[fidelity]}.")
            version = version or tables[fidelity][-1]
            source = resources.files("legal_hpo_env") / "recorded" / f"{fidelity}-v{version}.json.gz"
        table = read_table(source)
        self.metadata: dict[str, Any] = {**table["metadata"], "fidelity": fidelity, "version": table["version"]}
        results = [r for task, entry in table["tasks"].items() for r in _expand(task, entry, self.metadata)]
        super().__init__(results, meta={task: entry["task_meta"] for task, entry in table["tasks"].items()})
