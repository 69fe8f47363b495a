"""Env steps per second of ``LegalHPO-v0`` (recorded backend) next to ``CartPole-v1``.

All run through ``gym.make`` with random actions, in one run, alternating. The headline is
the default env (``delta`` actions, basic observation); the ``single`` and ``direct``
action modes and the ``adaptive`` observation are measured alongside (``--no-variants``
skips them), each with its ratio to CartPole's rate.

    python -m benchmarks.env_speed [--steps 20000] [--repeats 3] [--no-variants]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from benchmarks.common import write_result

HEADLINE = "LegalHPO-v0"
#: The other LegalHPO-v0 configurations measured: name -> gym.make keyword arguments.
VARIANTS = {
    "LegalHPO-v0 action_mode=single": {"action_mode": "single"},
    "LegalHPO-v0 action_mode=direct": {"action_mode": "direct"},
    "LegalHPO-v0 observation=adaptive": {"observation": "adaptive"},
}


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
    parser.add_argument("--no-variants", action="store_true", help="measure the default env and CartPole only")
    args = parser.parse_args()

    import legal_hpo_env  # noqa: F401

    start = time.perf_counter()
    import gymnasium as gym

    gym.make("LegalHPO-v0").reset(seed=0)
    make_seconds = time.perf_counter() - start
    # name -> (env id, kwargs); every repeat runs each once, in this order
    envs: dict[str, tuple[str, dict]] = {HEADLINE: ("LegalHPO-v0", {}), "CartPole-v1": ("CartPole-v1", {})}
    if not args.no_variants:
        envs.update({name: ("LegalHPO-v0", kwargs) for name, kwargs in VARIANTS.items()})
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, (env_id, kwargs) in envs.items():
            rates[name].append(steps_per_second(env_id, args.steps, **kwargs))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    ratios = {name: medians[name] / medians["CartPole-v1"] for name in envs if name != "CartPole-v1"}
    write_result("env_speed", {
        "command": "python -m benchmarks.env_speed " + " ".join(sys.argv[1:]),
        "setup": {"steps": args.steps, "repeats": args.repeats, "legal_hpo_kwargs": "defaults (recorded head table, "
                  "unfair_tos, delta actions)", "actions": "random, action_space.seed(0)",
                  "variants": {name: VARIANTS[name] for name in envs if name in VARIANTS}},
        "steps_per_second": rates,
        "median_steps_per_second": medians,
        "ratio_to_cartpole": ratios[HEADLINE],
        "ratios_to_cartpole": ratios,
        "first_make_and_reset_seconds": make_seconds,
    })
    print(medians)
    print({name: round(ratio, 3) for name, ratio in ratios.items()})


if __name__ == "__main__":
    main()
