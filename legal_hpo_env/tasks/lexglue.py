"""The official LexGLUE versions of tasks, through Hugging Face ``datasets``.

They need internet the first time; ``pip install 'legal-hpo-env[lexglue]'``.

Task names ``lexglue/<config>`` (``unfair_tos``, ``scotus``, ``ledgar``, ``case_hold``)
load LexGLUE's own train/validation/test splits, so scores are comparable with its
tables. The local files (``unfair_tos``, ``scotus``) are a different, smaller cut.

Conversions to single-label classification, stated because they change the task:
- ``unfair_tos`` is multi-label in LexGLUE: a sentence with no unfair label becomes
  ``"fair"``, one with several takes its first label (a small minority).
- ``scotus`` is LexGLUE's issue-area classification (14 classes), not the local task's
  "does the first party win".
- ``case_hold`` (5-way multiple choice) becomes (context, holding) -> is this the
  holding? pairs, grouped by question, as ``jec_qa``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from legal_hpo_env.tasks.readers import DataError, Example
from legal_hpo_env.tasks.specs import TaskSpec

__all__ = ["LEXGLUE_CONFIGS", "lexglue_spec", "load_lexglue", "convert"]

HUB_DATASET = "coastalnlp/lex_glue"
LEXGLUE_CONFIGS = {
    "unfair_tos": ("terms_of_service", "macro_f1"),
    "scotus": ("judgment", "macro_f1"),
    "ledgar": ("contract_clauses", "macro_f1"),
    "case_hold": ("case_law", "macro_f1"),
}
_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))


def lexglue_spec(config: str) -> TaskSpec:
    if config not in LEXGLUE_CONFIGS:
        raise KeyError(config)
    family, metric = LEXGLUE_CONFIGS[config]
    return TaskSpec(
        name=f"lexglue/{config}",
        family=family,
        reader="lexglue",
        files=(),
        metric=metric,
        description=f"LexGLUE {config}, official splits, from the Hugging Face hub",
        licence="see LexGLUE (CC BY 4.0 for most configurations)",
        group_split=config == "case_hold",
        options=(("config", config),),
    )


def _label_names(features: Any, key: str) -> list[str]:
    feature = features[key]
    feature = getattr(feature, "feature", feature)  # a Sequence of ClassLabel (multi-label)
    return list(feature.names)


def convert(config: str, rows: Iterable[dict], names: list[str], split: str) -> tuple[list[str], list[Example]]:
    """LexGLUE rows of one split -> (label names, examples)."""
    examples = []
    if config == "unfair_tos":
        names = [*names, "fair"]
        for row in rows:
            labels = row["labels"]
            examples.append(Example(text=row["text"], label=labels[0] if labels else len(names) - 1))
    elif config in ("scotus", "ledgar"):
        examples = [Example(text=row["text"], label=int(row["label"])) for row in rows]
    elif config == "case_hold":
        names = ["not the holding", "holding"]
        for n, row in enumerate(rows):
            for i, ending in enumerate(row["endings"]):
                examples.append(Example(text=row["context"], text_pair=ending, label=int(i == row["label"]),
                                        group=f"{split}-{n}"))
    else:
        raise KeyError(config)
    return names, examples


def load_lexglue(spec: TaskSpec) -> tuple[list[str], dict[str, list[Example]], str]:
    """(label names, examples per split, data hash) of a ``lexglue/<config>`` task."""
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"task {spec.name!r} needs Hugging Face datasets: pip install 'legal-hpo-env[lexglue]'.") from e
    config = dict(spec.options)["config"]
    try:
        dataset = datasets.load_dataset(HUB_DATASET, config)
    except Exception as e:  # noqa: BLE001  (network, hub and cache errors all mean the same here)
        raise DataError(
            f"task {spec.name!r}: cannot load {HUB_DATASET}/{config} ({type(e).__name__}: {e}). It needs internet "
            "access the first time (later it is read from the datasets cache); offline, use the local tasks."
        ) from e
    key = "labels" if config == "unfair_tos" else "label"
    names = [] if config == "case_hold" else _label_names(dataset["train"].features, key)
    splits, label_names = {}, names
    digest = hashlib.sha256(f"{HUB_DATASET}/{config}".encode())
    for ours, theirs in _SPLITS:
        label_names, splits[ours] = convert(config, dataset[theirs], names, theirs)
        digest.update(str(getattr(dataset[theirs], "_fingerprint", len(dataset[theirs]))).encode())
    return label_names, splits, digest.hexdigest()[:16]
