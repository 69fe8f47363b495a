"""Env steps per second of ``LegalHPO-v0`` (recorded backend) next to ``CartPole-v1``.

Both run through ``gym.make`` with random actions, in one run, alternating.

    python -m benchmarks.env_speed [--steps 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks.common import write_result


def steps_per_second(env_id: str, steps: int, **kwargs) -> float:
    import gymnasium as gym

    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % 1000])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import legal_hpo_env  # noqa: F401

    start = time.perf_counter()
    import gymnasium as gym

    gym.make("LegalHPO-v0").reset(seed=0)
    make_seconds = time.perf_counter() - start
    envs = {"LegalHPO-v0": {}, "CartPole-v1": {}}
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, kwargs in envs.items():
            rates[name].append(steps_per_second(name, args.steps, **kwargs))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    write_result("env_speed", {
        "command": "python -m benchmarks.env_speed " + " ".join(sys.argv[1:]),
        "setup": {"steps": args.steps, "repeats": args.repeats, "legal_hpo_kwargs": "defaults (recorded head table, "
                  "unfair_tos, delta actions)", "actions": "random, action_space.seed(0)"},
        "steps_per_second": rates,
        "median_steps_per_second": medians,
        "ratio_to_cartpole": medians["LegalHPO-v0"] / medians["CartPole-v1"],
        "first_make_and_reset_seconds": make_seconds,
    })
    print(medians, medians["LegalHPO-v0"] / medians["CartPole-v1"])


if __name__ == "__main__":
    main()
