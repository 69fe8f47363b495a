"""Trials per minute on Ray with 1 and 2 workers, on the ``head`` backend.

    python -m benchmarks.ray_scaling [--task unfair_tos] [--trials 32] [--workers 1 2] [--address HOST:PORT]

By default the real task (data at $LEGAL_HPO_DATA, else ../shared/data/legal) with the
packaged MiniLM; any other task (``--task custom:file.csv``) and model (``--model``) work too.

The encoder's features are computed once, before timing (the head backend caches them on
disk, where the workers of this machine read them). Then for each worker count ``w``: a
warm-up of ``w`` other trials (worker processes start, import torch, load the task and its
features), then the same ``--trials`` trials (uniformly random grid points, one seed each,
no trial store) sent with ``Objective.evaluate_many`` on a ``RayExecutor(max_in_flight=w)``, each reserving
one CPU and using one torch thread. Trials per minute = trials / wall seconds. The same
trials run in this process (after one warm-up trial), one after another on one thread, as the
no-Ray reference.

Writes benchmarks/results/ray_scaling.json, with the machine's load average: on a shared
machine other work competes for the cores, and the speed-up shows it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from typing import Any

from benchmarks.common import data_dir, write_result


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="unfair_tos")
    parser.add_argument("--model", help="default: the packaged all-MiniLM-L6-v2")
    parser.add_argument("--data-dir", default=None, help="default: $LEGAL_HPO_DATA, else ../shared/data/legal")
    parser.add_argument("--max-train", type=int)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-epochs", type=int, default=8, help="cap on the sampled epochs (default: none, 8)")
    parser.add_argument("--trials", type=int, default=32, help="timed trials per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--address",
                        help="an existing Ray cluster (default: a local instance with max(--workers) CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.backends.head import encoder_features
    from legal_hpo_env.distributed import RayExecutor, connect, shutdown
    from legal_hpo_env.objective import Objective
    from legal_hpo_env.space import SPACE

    folder = args.data_dir or data_dir()
    fidelity = Fidelity(max_train=args.max_train, max_length=args.max_length)
    torch.set_num_threads(1)  # the reference gets what one worker gets: one core
    local = Objective(args.task, "head", model=args.model, data_dir=folder, fidelity=fidelity, device="cpu")
    start = time.perf_counter()
    encoder_features(local.data, args.model, args.max_length, local.live_backend.device)
    feature_seconds = time.perf_counter() - start

    rng = random.Random(args.seed)
    epochs = [e for e in SPACE["epochs"].grid if e <= args.max_epochs]

    def trials(n: int, first_seed: int) -> tuple[list[Any], list[int]]:
        configs = []
        for _ in range(n):
            config = SPACE.from_indices([rng.randrange(len(d.grid)) for d in SPACE.dimensions])
            configs.append(config.replace(epochs=rng.choice(epochs)))
        return configs, list(range(first_seed, first_seed + n))

    configs, seeds = trials(args.trials, 0)
    warm, warm_seeds = trials(1, 1_000)
    local(warm[0], warm_seeds[0])  # one-off costs (lazy imports, allocator) out of the timing, as for the workers
    start = time.perf_counter()
    results = [local(c, s) for c, s in zip(configs, seeds)]
    local_wall = time.perf_counter() - start
    rows: dict[str, Any] = {"local": {
        "workers": 0, "trials": args.trials, "wall_seconds": local_wall,
        "trials_per_minute": 60 * args.trials / local_wall,
        "trial_seconds_median": statistics.median(r.seconds for r in results), "load_average": _load(),
    }}
    print(f"in process: {rows['local']['trials_per_minute']:.1f} trials/min", file=sys.stderr)

    connect(args.address, num_cpus=None if args.address else max(args.workers))
    try:
        for w in args.workers:
            # a fresh objective per setting (no store): the same trials are trained again
            executor = RayExecutor(address=args.address, trial_cpus=1, max_in_flight=w)
            remote = Objective(args.task, "head", model=args.model, data_dir=folder, fidelity=fidelity,
                               executor=executor)
            warm, warm_seeds = trials(w, 10_000 * w)
            remote.evaluate_many(warm, warm_seeds)
            start = time.perf_counter()
            results = remote.evaluate_many(configs, seeds)
            wall = time.perf_counter() - start
            failed = [r.extra["failed"] for r in results if "failed" in r.extra]
            trial_seconds = [r.seconds for r in results if "failed" not in r.extra]
            rows[f"ray-{w}"] = {
                "workers": w, "trials": args.trials, "wall_seconds": wall,
                "trials_per_minute": 60 * args.trials / wall,
                "trial_seconds_median": statistics.median(trial_seconds),
                # what Ray adds per trial: wall time per trial and worker beyond the training itself
                "overhead_seconds_per_trial": wall * w / args.trials - statistics.mean(trial_seconds),
                "nodes": sorted({str(r.extra.get("node")) for r in results}),
                "worker_processes": len({r.extra.get("pid") for r in results}),
                "failed": failed, "load_average": _load(),
            }
            print(f"ray, {w} worker(s): {rows[f'ray-{w}']['trials_per_minute']:.1f} trials/min", file=sys.stderr)
    finally:
        shutdown()
    base = rows.get(f"ray-{min(args.workers)}")
    for row in rows.values():
        if base and row["workers"]:
            row["speedup_vs_fewest_workers"] = row["trials_per_minute"] / base["trials_per_minute"]
    write_result("ray_scaling", {
        "command": "python -m benchmarks.ray_scaling " + " ".join(sys.argv[1:]),
        "setup": {"task": args.task, "model": args.model or "packaged all-MiniLM-L6-v2", "backend": "head",
                  "sizes": local.data.sizes(), "max_train": args.max_train, "max_length": args.max_length,
                  "epochs_sampled_from": epochs, "trials_per_setting": args.trials, "trial_cpus": 1,
                  "torch_threads_per_trial": 1, "address": args.address or "local instance",
                  "feature_pass_seconds": feature_seconds, "seed": args.seed,
                  "configs": "the same uniform random grid points (epochs capped) in every setting, no store",
                  "ray": __import__("ray").__version__},
        "settings": rows,
    })


if __name__ == "__main__":
    main()
