"""The table of legal tasks. Tasks are data: adding one is adding a row here (or a file
through :func:`legal_hpo_env.tasks.custom_task`), never a new script."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TaskSpec", "TASKS", "FAMILIES"]

#: Task families, in the order used by the environment's one-hot task feature.
FAMILIES = ("classification", "qa", "judgment")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is and where its data lives.

    Attributes:
        name: the task's name, as given to ``gym.make(..., task=name)``.
        family: one of :data:`FAMILIES`.
        reader: name of the reader in :mod:`legal_hpo_env.tasks.readers` that turns the
            files into examples.
        files: paths relative to the data directory.
        metric: the headline metric, ``"macro_f1"`` or ``"accuracy"``.
        description: one line for ``legal-hpo tasks``.
        licence: licence of the data, so that users know what they may do with results.
        group_split: split by document/question groups instead of by example, where
            examples share a source text (no document may sit in two splits).
        language: ISO code; the default (English) model does not fit ``"zh"`` tasks.
        lexglue: LexGLUE configuration offering an official version through ``datasets``.
        options: reader options as ``(name, value)`` pairs (part of the data hash).
    """

    name: str
    family: str
    reader: str
    files: tuple[str, ...]
    metric: str
    description: str
    licence: str
    group_split: bool = False
    language: str = "en"
    lexglue: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"task {self.name!r}: family {self.family!r} is not one of {FAMILIES}")
        if self.metric not in ("macro_f1", "accuracy"):
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} is not 'macro_f1' or 'accuracy'")


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            name="unfair_tos",
            family="classification",
            reader="legalbench_tsv",
            files=("legalbench/unfair_tos.tsv",),
            metric="macro_f1",
            description="Terms-of-Service sentence -> unfair-clause type (8 types + Other, very imbalanced)",
            licence="CC BY 4.0",
            lexglue="unfair_tos",
        ),
        TaskSpec(
            name="overruling",
            family="classification",
            reader="legalbench_tsv",
            files=("legalbench/overruling.tsv",),
            metric="accuracy",
            description="court-opinion sentence -> does it overrule a precedent? (balanced)",
            licence="CC BY 4.0",
        ),
        TaskSpec(
            name="contract_nli",
            family="qa",
            reader="contract_nli",
            files=("contract_nli/dev.json", "contract_nli/test.json"),
            metric="macro_f1",
            description="does this NDA say <hypothesis>? -> entailment / contradiction / not mentioned, "
            "answered from TF-IDF-retrieved passages",
            licence="CC BY-NC-SA 4.0",
            group_split=True,
            options=(("passages", 4),),
        ),
        TaskSpec(
            name="scotus",
            family="judgment",
            reader="scotus_oyez",
            files=("scotus_oyez/justice.csv",),
            metric="macro_f1",
            description="US Supreme Court parties + facts -> does the first party win?",
            licence="Oyez-derived, non-commercial",
            lexglue="scotus",
        ),
        TaskSpec(
            name="jec_qa",
            family="qa",
            reader="jec_qa",
            files=("jec_qa/train.jsonl",),
            metric="macro_f1",
            description="Chinese judicial exam: (question, option) -> is the option correct? (needs a Chinese model)",
            licence="research use, no licence file",
            group_split=True,
            language="zh",
        ),
        TaskSpec(
            name="cjrc",
            family="qa",
            reader="cjrc",
            files=("cjrc/dev.json", "cjrc/test.json"),
            metric="macro_f1",
            description="Chinese judgment reading comprehension: (question, passage) -> answer type "
            "(span / yes / no / unanswerable) (needs a Chinese model)",
            licence="research use, no licence file",
            group_split=True,
            language="zh",
        ),
    ]
}
