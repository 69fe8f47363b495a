"""Legal tasks: a table of specs, file readers, and one seeded, stratified loader."""

from legal_hpo_env.tasks.loading import (
    DATA_ENV_VAR,
    SPLIT_FRACTIONS,
    SPLIT_SEED,
    TaskData,
    UnknownTaskError,
    custom_task,
    get_spec,
    load_task,
    resolve_data_dir,
)
from legal_hpo_env.tasks.readers import DataError, Example
from legal_hpo_env.tasks.specs import FAMILIES, TASKS, TaskSpec
from legal_hpo_env.tasks.suite import TASK_SETS, expand_tasks

__all__ = [
    "DATA_ENV_VAR",
    "FAMILIES",
    "SPLIT_FRACTIONS",
    "SPLIT_SEED",
    "TASKS",
    "TASK_SETS",
    "DataError",
    "Example",
    "TaskData",
    "TaskSpec",
    "UnknownTaskError",
    "custom_task",
    "expand_tasks",
    "get_spec",
    "load_task",
    "resolve_data_dir",
]
