"""The table of legal tasks.

Tasks are data: adding one is adding a row here (or a file through
:func:`legal_hpo_env.tasks.custom_task`), never a new script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TaskSpec", "TASKS", "FAMILIES", "CUSTOM_FAMILY"]

#: Task families, in the order used by the environment's one-hot task feature. A family is
#: a kind of legal text and question; whole families are held out in the standard split.
FAMILIES = (
    "terms_of_service",  # unfair_tos: consumer-contract sentences, unfair-clause type
    "case_law",  # overruling: court-opinion sentences
    "contract_qa",  # contract_nli: questions answered from a contract
    "judgment",  # scotus: predict a case's outcome from its facts
    "contract_clauses",  # CUAD: is this commercial-contract clause of category X?
    "jurisdiction",  # diversity: does a federal court have diversity jurisdiction?
    "chinese_qa",  # jec_qa, cjrc: Chinese legal exam and judgment reading comprehension
)
#: The family of a user's own data (``custom:<path>``): in no one-hot slot, as no policy saw it.
CUSTOM_FAMILY = "custom"


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
        if self.family not in FAMILIES and self.family != CUSTOM_FAMILY:
            raise ValueError(f"task {self.name!r}: family {self.family!r} is not one of {(*FAMILIES, CUSTOM_FAMILY)}")
        if self.metric not in ("macro_f1", "accuracy"):
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} is not 'macro_f1' or 'accuracy'")


#: The 22 CUAD clause categories of LegalBench: (file stem, what the clause is).
_CUAD = (
    ("affiliate_license_licensee", "licence-to-affiliates (licensee)"),
    ("anti_assignment", "anti-assignment"),
    ("audit_rights", "audit-rights"),
    ("cap_on_liability", "cap-on-liability"),
    ("change_of_control", "change-of-control"),
    ("competitive_restriction_exception", "competitive-restriction-exception"),
    ("covenant_not_to_sue", "covenant-not-to-sue"),
    ("expiration_date", "expiration-date"),
    ("governing_law", "governing-law"),
    ("ip_ownership_assignment", "IP-ownership-assignment"),
    ("irrevocable_or_perpetual_license", "irrevocable-or-perpetual-licence"),
    ("license_grant", "licence-grant"),
    ("liquidated_damages", "liquidated-damages"),
    ("minimum_commitment", "minimum-commitment"),
    ("non_transferable_license", "non-transferable-licence"),
    ("notice_period_to_terminate_renewal", "notice-period-to-terminate-renewal"),
    ("post_termination_services", "post-termination-services"),
    ("revenue_profit_sharing", "revenue/profit-sharing"),
    ("rofr_rofo_rofn", "right-of-first-refusal/offer/negotiation"),
    ("termination_for_convenience", "termination-for-convenience"),
    ("uncapped_liability", "uncapped-liability"),
    ("volume_restriction", "volume-restriction"),
)

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            name="unfair_tos",
            family="terms_of_service",
            reader="legalbench_tsv",
            files=("legalbench/unfair_tos.tsv",),
            metric="macro_f1",
            description="Terms-of-Service sentence -> unfair-clause type (8 types + Other, very imbalanced)",
            licence="CC BY 4.0",
            lexglue="unfair_tos",
        ),
        TaskSpec(
            name="overruling",
            family="case_law",
            reader="legalbench_tsv",
            files=("legalbench/overruling.tsv",),
            metric="accuracy",
            description="court-opinion sentence -> does it overrule a precedent? (balanced)",
            licence="CC BY 4.0",
        ),
        TaskSpec(
            name="contract_nli",
            family="contract_qa",
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
            family="chinese_qa",
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
            family="chinese_qa",
            reader="cjrc",
            files=("cjrc/dev.json", "cjrc/test.json"),
            metric="macro_f1",
            description="Chinese judgment reading comprehension: (question, passage) -> answer type "
            "(span / yes / no / unanswerable) (needs a Chinese model)",
            licence="research use, no licence file",
            group_split=True,
            language="zh",
        ),
        *(
            TaskSpec(
                name=f"cuad_{category}",
                family="contract_clauses",
                reader="legalbench_tsv",
                files=(f"legalbench/cuad_{category}.tsv",),
                metric="accuracy",
                description=f"commercial-contract clause -> is it a {what} clause? (CUAD, balanced)",
                licence="CC BY 4.0",
            )
            for category, what in _CUAD
        ),
        *(
            TaskSpec(
                name=f"diversity_{level}",
                family="jurisdiction",
                reader="legalbench_tsv",  # reads text and label only: the answer's two halves never enter
                files=(f"legalbench/diversity_{level}.tsv",),
                metric="macro_f1",
                description=f"fact pattern -> diversity jurisdiction? (synthetic, variant {level} of 5, "
                "rising complexity)",
                licence="CC BY 4.0",
            )
            for level in range(1, 6)
        ),
    ]
}
