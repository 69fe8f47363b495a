"""Seconds per ``head`` trial once the encoder's features are cached, on each English task.

Also the one-off cost of the feature pass.

    python -m benchmarks.head_speed [--trials 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from benchmarks.common import data_dir, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["unfair_tos", "overruling", "contract_nli", "scotus"])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()

    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.backends.head import HeadBackend, encoder_features
    from legal_hpo_env.space import SPACE
    from legal_hpo_env.tasks import load_task

    backend, rows = HeadBackend(), {}
    rng = random.Random(0)
    for name in args.tasks:
        task = load_task(name, data_dir())
        start = time.perf_counter()
        encoder_features(task, None, 128, backend.device)
        feature_seconds = time.perf_counter() - start
        configs = [SPACE.from_indices([rng.randrange(len(d.grid)) for d in SPACE.dimensions])
                   for _ in range(args.trials)]
        seconds, per_epoch, scores = [], [], []
        for i, config in enumerate(configs):
            result = backend.evaluate(task, config, Fidelity(), seed=i)
            seconds.append(result.seconds)
            per_epoch.append(result.seconds / config.epochs)
            scores.append(result.dev_score)
        rows[name] = {
            "feature_pass_seconds": feature_seconds,
            "feature_pass_cached": feature_seconds < 2.0,
            "trial_seconds_median": statistics.median(seconds),
            "trial_seconds_max": max(seconds),
            "seconds_per_epoch_median": statistics.median(per_epoch),
            "dev_score_best_median_worst": [max(scores), statistics.median(scores), min(scores)],
            "sizes": task.sizes(),
        }
        print(name, {k: v for k, v in rows[name].items() if k != "sizes"}, file=sys.stderr)
    write_result("head_speed", {
        "command": "python -m benchmarks.head_speed " + " ".join(sys.argv[1:]),
        "setup": {"trials": args.trials, "configs": "uniform random grid points, seed 0", "max_length": 128},
        "tasks": rows,
    })


if __name__ == "__main__":
    main()
