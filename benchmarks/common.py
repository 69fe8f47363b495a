"""What every benchmark records: the machine, library versions and where results go."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from legal_hpo_env.jsonable import finite_json

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "legal"


def data_dir() -> str:
    """``$LEGAL_HPO_DATA``, else the conventional folder beside the checkout."""
    return os.environ.get("LEGAL_HPO_DATA") or str(DEFAULT_DATA)


def environment() -> dict[str, Any]:
    versions = {}
    for package in ("legal-hpo-env", "torch", "transformers", "gymnasium", "numpy", "scikit-learn",
                    "stable-baselines3", "optuna", "accelerate"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    try:
        import torch

        threads, cuda = torch.get_num_threads(), torch.cuda.is_available()
    except ImportError:
        threads, cuda = None, False
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": threads,
        "cuda": cuda,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_result(name: str, payload: dict[str, Any], folder: Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``folder/<name>.json``) with the environment attached."""
    folder = RESULTS if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(
        json.dumps(finite_json({"benchmark": name, "environment": environment(), **payload}), indent=2) + "\n"
    )
    print(f"wrote {path}")
    return path
