"""Ray: the only package that imports ``ray`` (lazily, on first use), split by job.

- :mod:`.cluster`: join a cluster or start a local instance; check resources.
- :mod:`.executor`: :class:`RayExecutor`, which runs an objective's trials as Ray tasks.
- :mod:`.rllib`: register ``LegalHPO-v0`` with RLlib.
"""

from legal_hpo_env.distributed.cluster import INSTALL_HINT, check_resources, connect, import_ray, shutdown
from legal_hpo_env.distributed.executor import RayExecutor, RayOptions, run_trial, worker_objective
from legal_hpo_env.distributed.rllib import register_rllib_env

__all__ = [
    "INSTALL_HINT",
    "RayExecutor",
    "RayOptions",
    "check_resources",
    "connect",
    "import_ray",
    "register_rllib_env",
    "run_trial",
    "shutdown",
    "worker_objective",
]
