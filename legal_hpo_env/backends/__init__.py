"""Backends: how one configuration is evaluated.

``finetune`` fine-tunes the whole transformer; ``head`` trains a head on frozen, cached
features (both import torch only when created, so importing this package stays cheap);
``recorded`` replays packaged recordings of those two (no torch at all).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from legal_hpo_env.backends.base import DIVERGED_SCORE, Fidelity, TrialResult

if TYPE_CHECKING:
    from legal_hpo_env.backends.base import Backend

__all__ = ["BACKENDS", "DIVERGED_SCORE", "Fidelity", "TrialResult", "make_backend", "UnknownBackendError"]

#: name -> "module:class", imported on first use.
BACKENDS: dict[str, str] = {
    "finetune": "legal_hpo_env.backends.finetune:FinetuneBackend",
    "head": "legal_hpo_env.backends.head:HeadBackend",
    "recorded": "legal_hpo_env.backends.recorded:RecordedBackend",
}


class UnknownBackendError(ValueError):
    """A backend name that is not in :data:`BACKENDS`."""


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Create the backend called ``name`` with its keyword arguments (model, device)."""
    if name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}: valid backends are {sorted(BACKENDS)}.")
    module, cls = BACKENDS[name].split(":")
    return getattr(import_module(module), cls)(**kwargs)
