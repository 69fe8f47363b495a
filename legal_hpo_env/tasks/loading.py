"""One loader for every task: resolve the data directory, read, hash, split.

Splits are deterministic and stratified (by label; by document where examples share a
source text) from a fixed seed, so that every trial of every user sees the same
train/dev/test examples. The split seed, the sizes and a hash of the data are part of
:class:`TaskData` and so of every result.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from legal_hpo_env.tasks.lexglue import LEXGLUE_CONFIGS, lexglue_spec, load_lexglue
from legal_hpo_env.tasks.readers import READERS, DataError, Example
from legal_hpo_env.tasks.specs import CUSTOM_FAMILY, FAMILIES, TASKS, TaskSpec

__all__ = [
    "TaskData",
    "load_task",
    "resolve_data_dir",
    "custom_task",
    "get_spec",
    "UnknownTaskError",
    "DATA_ENV_VAR",
    "SPLIT_SEED",
    "SPLIT_FRACTIONS",
]

DATA_ENV_VAR = "LEGAL_HPO_DATA"
SPLIT_SEED = 20240601
#: (train, dev, test) fractions.
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
#: Bumped whenever reading or splitting changes what examples a task yields.
LOADER_VERSION = 1


class UnknownTaskError(KeyError, ValueError):
    """A task name that is in neither the task table nor a ``custom:`` path.

    A ``KeyError`` (a name missing from the task table) and a ``ValueError`` (an invalid
    argument, like every other bad argument of the environment).
    """

    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0])


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: load_task caches one per task
class TaskData:
    """A task's examples, split, with the facts every result must carry."""

    spec: TaskSpec
    label_names: tuple[str, ...]
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    data_hash: str
    stats: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}

    def capped(self, max_train: int | None) -> TaskData:
        """The same task with a stratified, deterministic subset of at most ``max_train`` training examples.

        This is the training-set-size fidelity. Dev and test are unchanged.
        """
        keep = self.train_subset(max_train)
        if len(keep) == len(self.train):
            return self
        train = tuple(self.train[i] for i in keep)
        return TaskData(self.spec, self.label_names, train, self.dev, self.test, self.data_hash, self.stats)

    def train_subset(self, max_train: int | None) -> list[int]:
        """Sorted indices of the training examples kept at a training-set-size cap.

        Every class keeps at least one example, the rest in proportion, from a fixed seed.
        """
        return self.subset("train", max_train)

    def subset(self, split: str, cap: int | None) -> list[int]:
        """Sorted indices of the examples of ``split`` kept at a cap (stratified by label, deterministic).

        These caps are the training-set-size and evaluation-size fidelities.
        """
        examples = {"train": self.train, "dev": self.dev, "test": self.test}[split]
        n = len(examples)
        if cap is None or cap >= n:
            return list(range(n))
        by_label: dict[int, list[int]] = defaultdict(list)
        for i, ex in enumerate(examples):
            by_label[ex.label].append(i)
        if cap < len(by_label):
            raise ValueError(f"a cap of {cap} {split} examples is smaller than the number of labels ({len(by_label)}).")
        quotas = {y: max(1, len(ix) * cap // n) for y, ix in by_label.items()}
        while sum(quotas.values()) > cap:
            quotas[max(quotas, key=lambda k: quotas[k])] -= 1
        rng = random.Random(SPLIT_SEED)
        keep: list[int] = []
        for y, ix in sorted(by_label.items()):
            ix = ix[:]
            rng.shuffle(ix)
            keep.extend(ix[: quotas[y]])
        kept = set(keep)
        rest = [i for i in range(n) if i not in kept]
        rng.shuffle(rest)
        keep.extend(rest[: cap - len(keep)])
        return sorted(keep)

    def meta_features(self) -> dict[str, float]:
        """Task descriptors an agent may see (family, size, labels, class balance, input length)."""
        lengths = [len(ex.text) + len(ex.text_pair or "") for ex in self.train]
        counts = Counter(ex.label for ex in self.train)
        return {
            "family": float(FAMILIES.index(self.spec.family)) if self.spec.family in FAMILIES else -1.0,
            "train_size": float(len(self.train)),
            "num_labels": float(self.num_labels),
            # the share of the most frequent training label: 1 / labels when balanced, near 1 when skewed
            "majority_share": max(counts.values()) / max(1, len(self.train)) if counts else 1.0,
            "mean_chars": float(sum(lengths) / max(1, len(lengths))),
        }


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else ``$LEGAL_HPO_DATA``; it must exist."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV_VAR)
    if not chosen:
        raise DataError(
            f"no data directory given: pass data_dir=... (CLI: --data-dir) or set {DATA_ENV_VAR} to the folder "
            "that holds legalbench/, contract_nli/, scotus_oyez/, ... (see README, 'Data')."
        )
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "data_dir" if data_dir is not None else f"${DATA_ENV_VAR}"
        raise DataError(
            f"data directory {str(path)!r} (from {source}) does not exist: point {source} to the folder that holds "
            "legalbench/, contract_nli/, scotus_oyez/, ... (see README, 'Data')."
        )
    return path


def custom_task(path: str | os.PathLike, name: str | None = None, metric: str = "macro_f1") -> TaskSpec:
    """A task from your own CSV/TSV/JSONL file with columns ``text``, ``label`` and optionally ``text_pair``.

    Equivalent to the task name ``custom:<path>``.
    """
    try:
        p = Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop: RuntimeError before Python 3.13, OSError after
        raise DataError(f"custom task file {path!r} cannot be resolved ({e}): is it a symlink loop?") from e
    return TaskSpec(
        name=name or f"custom:{p}",
        family=CUSTOM_FAMILY,
        reader="custom",
        files=(str(p),),
        metric=metric,
        description=f"user data from {p.name}",
        licence="user-supplied",
    )


def get_spec(task: str | TaskSpec) -> TaskSpec:
    if isinstance(task, TaskSpec):
        return task
    if not isinstance(task, str):
        raise TypeError(f"task must be a task name (str) or TaskSpec, got {type(task).__name__}")
    if task.startswith("custom:"):
        return custom_task(task[len("custom:") :])
    if task.startswith("lexglue/") and task[len("lexglue/") :] in LEXGLUE_CONFIGS:
        return lexglue_spec(task[len("lexglue/") :])
    if task not in TASKS:
        official = [f"lexglue/{c}" for c in LEXGLUE_CONFIGS]
        raise UnknownTaskError(
            f"unknown task {task!r}: valid tasks are {sorted(TASKS)}, the official LexGLUE versions {official}, "
            "or 'custom:<path to csv/tsv/jsonl>'."
        )
    return TASKS[task]


def _file_hash(paths: list[Path], spec: TaskSpec) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([LOADER_VERSION, spec.reader, spec.options, SPLIT_SEED, SPLIT_FRACTIONS]).encode())
    for p in paths:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _split_units(units: dict[int, list[list[int]]], rng: random.Random) -> tuple[list[int], list[int], list[int]]:
    """Allocate units (lists of example indices), stratum by stratum, to train/dev/test."""
    train, dev, test = [], [], []
    for _, members in sorted(units.items()):
        rng.shuffle(members)
        n = len(members)
        n_dev = round(n * SPLIT_FRACTIONS[1])
        n_test = round(n * SPLIT_FRACTIONS[2])
        if n >= 3:  # every class with at least 3 members appears in every split
            n_dev, n_test = max(1, n_dev), max(1, n_test)
        for unit in members[:n_dev]:
            dev.extend(unit)
        for unit in members[n_dev : n_dev + n_test]:
            test.extend(unit)
        for unit in members[n_dev + n_test :]:
            train.extend(unit)
    return sorted(train), sorted(dev), sorted(test)


def split_examples(examples: list[Example], group_split: bool) -> tuple[list[int], list[int], list[int]]:
    """Deterministic stratified split indices.

    Groups (documents, questions) never straddle splits when ``group_split``; they are
    stratified by their majority label.
    """
    rng = random.Random(SPLIT_SEED)
    strata: dict[int, list[list[int]]] = defaultdict(list)
    if group_split:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, ex in enumerate(examples):
            groups[ex.group or str(i)].append(i)
        for key in sorted(groups):
            members = groups[key]
            majority = Counter(examples[i].label for i in members).most_common(1)[0][0]
            strata[majority].append(members)
    else:
        for i, ex in enumerate(examples):
            strata[ex.label].append([i])
    return _split_units(strata, rng)


@lru_cache(maxsize=16)
def _load_cached(spec: TaskSpec, data_dir: str) -> TaskData:
    if spec.reader == "lexglue":  # official splits from the hub: nothing to read or split here
        names, splits, data_hash = load_lexglue(spec)
        train, dev, test = (tuple(splits[s]) for s in ("train", "dev", "test"))
        return TaskData(spec, tuple(names), train, dev, test, data_hash)
    root = Path(data_dir)
    paths = [root / rel for rel in spec.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing and spec.reader == "custom":  # an absolute path: the data directory plays no part
        what = "is a folder, not a file" if Path(missing[0]).is_dir() else "does not exist"
        raise DataError(f"task {spec.name!r}: {missing[0]} {what}; give the path of a CSV, TSV or JSONL file.")
    if missing:
        raise DataError(
            f"task {spec.name!r} needs {missing}, which do not exist under {root}: check the data directory "
            f"(data_dir=... or ${DATA_ENV_VAR})."
        )
    raw = READERS[spec.reader](spec, paths)
    if len(raw.examples) < 3 * len(raw.label_names):
        raise DataError(f"task {spec.name!r}: only {len(raw.examples)} examples, too few to split into train/dev/test.")
    tr, dv, te = split_examples(raw.examples, spec.group_split)
    if not dv or not te:  # only possible with few groups: every trial would fail scoring an empty split
        groups = len({ex.group for ex in raw.examples})
        raise DataError(
            f"task {spec.name!r}: its {groups} documents/questions are too few to give dev and test examples "
            "(a document never straddles splits); add data."
        )
    pick = lambda ix: tuple(raw.examples[i] for i in ix)  # noqa: E731
    train = pick(tr)
    unseen = sorted({ex.label for ex in raw.examples} - {ex.label for ex in train})
    if unseen:
        names = [raw.label_names[i] for i in unseen]
        raise DataError(f"task {spec.name!r}: label(s) {names} have too few examples to appear in training.")
    return TaskData(
        spec=spec,
        label_names=tuple(raw.label_names),
        train=train,
        dev=pick(dv),
        test=pick(te),
        data_hash=_file_hash(paths, spec),
        stats=raw.stats,
    )


def load_task(task: str | TaskSpec, data_dir: str | os.PathLike | None = None) -> TaskData:
    """Load and split a task.

    Args:
        task: a name from ``legal-hpo tasks``, ``custom:<path>``, or a :class:`TaskSpec`.
        data_dir: folder holding the data files; defaults to ``$LEGAL_HPO_DATA``. Ignored
            for custom tasks, whose path is absolute.

    Raises:
        UnknownTaskError: the name is not a known task.
        DataError: the directory or a file is missing or malformed.
    """
    spec = get_spec(task)
    if spec.reader in ("custom", "lexglue"):  # an absolute path, or the hub: no data directory
        return _load_cached(spec, "/")
    return _load_cached(spec, str(resolve_data_dir(data_dir).resolve()))
