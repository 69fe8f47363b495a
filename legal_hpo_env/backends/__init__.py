"""Backends: how one configuration is evaluated.

``finetune`` fine-tunes the whole transformer; ``head`` trains a head on frozen, cached
features (both import torch only when created, so importing this package stays cheap);
``recorded`` replays packaged recordings of those two (no torch at all).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from legal_hpo_env.backends.base import DIVERGED_SCORE, AnyBackend, Backend, Fidelity, ReplayBackend, TrialResult

__all__ = [
    "BACKENDS",
    "DIVERGED_SCORE",
    "AnyBackend",
    "Backend",
    "Fidelity",
    "ReplayBackend",
    "TrialResult",
    "make_backend",
    "UnknownBackendError",
]

#: name -> "module:class", imported on first use.
BACKENDS: dict[str, str] = {
    "finetune": "legal_hpo_env.backends.finetune:FinetuneBackend",
    "head": "legal_hpo_env.backends.head:HeadBackend",
    "recorded": "legal_hpo_env.backends.recorded:RecordedBackend",
}


class UnknownBackendError(ValueError):
    """A backend name that is not in :data:`BACKENDS`."""


def make_backend(name: str, *, model: str | None = None, device: str | None = None, **options: Any) -> AnyBackend:
    """Create the backend called ``name``.

    ``model``, ``device`` and ``options`` (such as ``test_each_epoch``) are for live backends.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}: valid backends are {sorted(BACKENDS)}.")
    module, cls = BACKENDS[name].split(":")
    try:
        backend_class = getattr(import_module(module), cls)
    except ImportError as err:
        if err.name not in ("torch", "transformers"):
            raise
        raise ImportError(
            f"the {name!r} backend trains models and needs torch and transformers ({err.name} is missing): "
            "pip install 'legal-hpo-env[train]'."
        ) from err
    if issubclass(backend_class, ReplayBackend):
        given = [f"{k}={v!r}" for k, v in (("model", model), ("device", device), *options.items()) if v is not None]
        if given:
            raise ValueError(
                f"backend {name!r} replays runs recorded with their own model, computing nothing; it cannot honour "
                f"{', '.join(given)}: use backend='head' or 'finetune' to train another model or on another device."
            )
        return backend_class()
    return backend_class(model=model, device=device, **options)
