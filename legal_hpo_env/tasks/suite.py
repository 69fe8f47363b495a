"""Named sets of tasks: the standard split of the suite, and every family.

Like DACBench's instance sets or HPO-B's fixed split, the standard split holds whole
families out: a policy tuned on ``suite:train`` is tested on ``suite:test``, legal text and
questions of kinds it never saw. Names work wherever a task name does in ``gym.make``
(``task="suite:train"``, ``task=["family:case_law", "scotus"]``).

| set | families | tasks |
|---|---|---|
| ``suite:train`` | contract_clauses, terms_of_service, case_law | the 22 CUAD tasks, unfair_tos, overruling |
| ``suite:test`` | contract_qa, judgment, jurisdiction | contract_nli, scotus, diversity_1..5 |
| ``suite:all`` | every English family | the 31 English tasks |
| ``family:<name>`` | one family | its English tasks |

The split is fixed: results on it compare across papers and versions only while it stays
so. The Chinese tasks need a Chinese model and are in no set.
"""

from __future__ import annotations

from legal_hpo_env.tasks.specs import FAMILIES, TASKS

__all__ = ["TASK_SETS", "TRAIN_FAMILIES", "TEST_FAMILIES", "expand_tasks", "is_task_set"]

#: Families of the standard split: training, and held out for testing.
TRAIN_FAMILIES = ("contract_clauses", "terms_of_service", "case_law")
TEST_FAMILIES = ("contract_qa", "judgment", "jurisdiction")


def _english(families: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name, spec in TASKS.items() if spec.family in families and spec.language == "en")


#: Every named set: name -> task names, in the task table's order.
TASK_SETS: dict[str, tuple[str, ...]] = {
    "suite:train": _english(TRAIN_FAMILIES),
    "suite:test": _english(TEST_FAMILIES),
    "suite:all": _english(TRAIN_FAMILIES + TEST_FAMILIES),
    **{f"family:{family}": _english((family,)) for family in FAMILIES if _english((family,))},
}


def is_task_set(name: str) -> bool:
    return name.startswith(("suite:", "family:"))


def expand_tasks(names: list[str]) -> list[str]:
    """Task names with every set replaced by its tasks (duplicates dropped, order kept)."""
    out: list[str] = []
    for name in names:
        if is_task_set(name):
            if name not in TASK_SETS:
                raise ValueError(f"unknown task set {name!r}: valid sets are {sorted(TASK_SETS)}.")
            out.extend(TASK_SETS[name])
        else:
            out.append(name)
    return list(dict.fromkeys(out))
