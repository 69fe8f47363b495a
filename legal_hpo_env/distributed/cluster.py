"""The connection to a Ray cluster: join one at an address, or start a local instance.

Everything here is about the cluster, nothing about trials: :mod:`.executor` runs trials
on it and :mod:`.rllib` registers the env with RLlib.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from legal_hpo_env.checks import is_number

__all__ = ["INSTALL_HINT", "import_ray", "connect", "shutdown", "check_resources", "check_amount"]

#: What to run when Ray is missing.
INSTALL_HINT = "pip install 'legal-hpo-env[ray]'"

@dataclass
class _Connection:
    """This process's connection: Ray's own state is per process, and so is this."""

    #: the address of the local instance this process started, if it did
    started: str | None = None
    #: the process that connected: a child forked from it inherits a Ray state that hangs
    pid: int | None = None
    #: addresses already found reachable
    reached: set[str] = field(default_factory=set)


_CONNECTION = _Connection()


def import_ray() -> Any:
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"trials on Ray, RLlib and the Ray Tune baseline need Ray: {INSTALL_HINT}") from err
    return ray


def _probe(address: str, timeout: float) -> None:
    """Fail fast on an address nothing listens on: ``ray.init`` itself retries for minutes."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            f"Ray address {address!r} is not host:port (e.g. 10.0.0.1:6379, or ray://10.0.0.1:10001 for Ray Client)."
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
        _CONNECTION.reached.add(address)
    except OSError as err:
        raise ConnectionError(
            f"cannot reach a Ray cluster at {address} ({err}). Check the address (`ray status` on the head node "
            "prints it), that `ray start --head` runs there and that its port is open to this machine; or give no "
            "address to start a local Ray instance."
        ) from err


def connect(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None, timeout: float = 10.0
) -> str:
    """Join the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local instance.

    Idempotent: a process already connected stays on its cluster (an explicit address is
    still checked for reachability, so that a wrong one never passes silently). Processes
    started later join the same cluster through the address this returns (an executor
    keeps it), never through a changed environment.

    Args:
        address: ``host:port`` of a running cluster's head, ``ray://host:port`` (Ray
            Client), ``"auto"`` (the cluster ``ray start`` started on this machine), or
            ``None``: ``$RAY_ADDRESS`` if set, else a new local instance.
        num_cpus: CPUs of a local instance (default: all); ignored when joining a cluster.
        num_gpus: GPUs of a local instance (default: all detected).
        timeout: seconds to wait for the address to answer.

    Returns:
        The address of the cluster's control store (GCS).

    Raises:
        ImportError: Ray is not installed.
        ConnectionError: nothing answers at the address.
    """
    ray = import_ray()
    address = address or None
    if ray.is_initialized():
        if _CONNECTION.pid is None:  # connected by the user's own ray.init
            _CONNECTION.pid = os.getpid()
        elif _CONNECTION.pid != os.getpid():
            raise RuntimeError(
                "this process was forked from one connected to Ray, and a forked Ray connection hangs: start env "
                "processes with 'spawn' or 'forkserver' (the default of SB3's SubprocVecEnv; "
                "gymnasium's AsyncVectorEnv(..., context='spawn'))."
            )
        if address not in (None, "auto", "local") and address not in _CONNECTION.reached:
            _probe(address, timeout)
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto", "local"):
        _probe(address, timeout)
    if address is None or address == "local":
        # "local", not None: None would join a cluster that `ray start` left on this machine
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)
        _CONNECTION.started, _CONNECTION.pid = ray.get_runtime_context().gcs_address, os.getpid()
        return _CONNECTION.started
    try:
        ray.init(address=address)
    except ConnectionError as err:
        raise ConnectionError(
            f"cannot join a Ray cluster at {address!r} ({err}). Start one with `ray start --head`, or give no "
            "address to start a local Ray instance."
        ) from err
    _CONNECTION.pid = os.getpid()
    return ray.get_runtime_context().gcs_address


def shutdown() -> None:
    """Leave the cluster (stopping the local instance this process started)."""
    ray = import_ray()
    ray.shutdown()
    _CONNECTION.started, _CONNECTION.pid = None, None


def check_amount(name: str, value: Any, minimum: float) -> float:
    if not is_number(value) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a number >= {minimum:g} (fractions share a device).")
    return float(value)


def check_resources(cpus: float, gpus: float) -> None:
    """Raise a ValueError when no live node of the cluster has ``cpus`` CPUs and ``gpus`` GPUs.

    Ray would otherwise queue such a task forever (it only logs a warning).
    """
    ray = import_ray()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0.0) >= cpus and r.get("GPU", 0.0) >= gpus for r in nodes):
        return
    largest_cpu = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
    largest_gpu = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    raise ValueError(
        f"no node of the Ray cluster can run a trial needing {cpus:g} CPU(s) and {gpus:g} GPU(s): its "
        f"{len(nodes)} node(s) have at most {largest_cpu:g} CPUs and {largest_gpu:g} GPUs. Lower trial_cpus/"
        "trial_gpus (--trial-cpus/--trial-gpus), or add a node that large to the cluster."
    )


