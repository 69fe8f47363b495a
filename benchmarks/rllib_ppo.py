r"""RLlib's PPO (new API stack) trains on ``LegalHPO-v0``, registered through ``ray.tune.registry.register_env``.

The env's keyword arguments are RLlib's ``env_config``. On the recorded backend trials
are replays, so this runs on a laptop in a minute; on a live backend every env step is a
trial, and RLlib's env runners are where trials run: ``--env-runners N`` spreads the
episodes over N Ray actors (on a cluster with ``--address``), each reserving
``--cpus-per-env-runner``/``--gpus-per-env-runner`` for its trials.

    python -m benchmarks.rllib_ppo [--iterations 5] [--table head | --table-path FILE]
    python -m benchmarks.rllib_ppo --backend head --task unfair_tos --max-train 1000 \
        --env-runners 4 --gpus-per-env-runner 0.25 --address HEAD:6379

Writes benchmarks/results/rllib_ppo.json: per iteration the mean episode return (with the
default ``--reward improvement``, the best dev score an episode found), env steps and seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import data_dir, write_result


def env_config(args: argparse.Namespace) -> dict[str, Any]:
    """The env's keyword arguments: plain data, except a recorded table read from a file."""
    config: dict[str, Any] = {"task": args.task, "budget": args.budget, "action_mode": "direct", "reward": args.reward}
    if args.backend != "recorded":
        return {**config, "backend": args.backend, "model": args.model, "data_dir": args.data_dir or data_dir(),
                "max_train": args.max_train, "max_length": args.max_length, "store": args.store}
    if args.table_path:
        from legal_hpo_env.backends.recorded import RecordedBackend

        return {**config, "backend": RecordedBackend(path=args.table_path)}
    return {**config, "backend": "recorded", "table": args.table}


def ppo_config(
    config: dict[str, Any],
    *,
    budget: int,
    env_runners: int = 0,
    cpus_per_env_runner: float = 1,
    gpus_per_env_runner: float = 0,
    episodes_per_iteration: int = 8,
    seed: int = 0,
) -> Any:
    """An RLlib ``PPOConfig`` on the registered ``LegalHPO-v0``.

    Each iteration samples ``episodes_per_iteration`` whole tuning episodes (``budget``
    steps each) and runs 4 epochs of PPO on them in mini-batches of 2 episodes.
    """
    from legal_hpo_env.distributed import register_rllib_env

    name = register_rllib_env()
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (
        PPOConfig()
        .environment(name, env_config=config)
        .env_runners(
            num_env_runners=env_runners, num_envs_per_env_runner=1, num_cpus_per_env_runner=cpus_per_env_runner,
            num_gpus_per_env_runner=gpus_per_env_runner, rollout_fragment_length="auto",
        )
        .learners(num_learners=0)  # a 2x64 MLP: the driver's CPU is enough
        .training(
            train_batch_size_per_learner=budget * episodes_per_iteration, minibatch_size=budget * 2, num_epochs=4,
            entropy_coeff=0.01,
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
        .debugging(seed=seed)
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="unfair_tos")
    parser.add_argument("--backend", default="recorded", choices=("recorded", "head", "finetune"))
    parser.add_argument("--table", default="head", help="packaged recorded table (recorded backend)")
    parser.add_argument("--table-path", help="a recorded table file instead of a packaged one")
    parser.add_argument("--model")
    parser.add_argument("--data-dir", help="default: $LEGAL_HPO_DATA, else ../shared/data/legal")
    parser.add_argument("--max-train", type=int)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--store", help="trial store file (live backends)")
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--reward", default="improvement", choices=("score", "improvement", "regret"))
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--episodes-per-iteration", type=int, default=8)
    parser.add_argument("--env-runners", type=int, default=0, help="0: sample in the driver process")
    parser.add_argument("--cpus-per-env-runner", type=float, default=1)
    parser.add_argument("--gpus-per-env-runner", type=float, default=0)
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local instance)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray instance (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="JSON file (default: benchmarks/results/rllib_ppo.json)")
    args = parser.parse_args(argv)

    from legal_hpo_env.distributed import connect

    connect(args.address, num_cpus=args.num_cpus)
    algo = ppo_config(
        env_config(args), budget=args.budget, env_runners=args.env_runners,
        cpus_per_env_runner=args.cpus_per_env_runner, gpus_per_env_runner=args.gpus_per_env_runner,
        episodes_per_iteration=args.episodes_per_iteration, seed=args.seed,
    ).build_algo()
    history = []
    start = time.perf_counter()
    try:
        for iteration in range(1, args.iterations + 1):
            result = algo.train()
            runners = result.get("env_runners", {})
            row = {
                "iteration": iteration,
                "episode_return_mean": runners.get("episode_return_mean"),
                "env_steps": runners.get("num_env_steps_sampled_lifetime"),
                "seconds": time.perf_counter() - start,
            }
            history.append(row)
            print(f"iteration {iteration}: return {row['episode_return_mean']}  steps {row['env_steps']}  "
                  f"{row['seconds']:.0f}s", file=sys.stderr)
    finally:
        algo.stop()
    config = env_config(args)
    payload = {
        "command": "python -m benchmarks.rllib_ppo " + " ".join(sys.argv[1:] if argv is None else argv),
        "setup": {**{k: v for k, v in vars(args).items() if k != "output"},
                  "env_config": {k: (v if isinstance(v, (str, int, float, type(None))) else type(v).__name__)
                                 for k, v in config.items()},
                  "algorithm": "RLlib PPO, new API stack, 2x64 MLP, 4 epochs, entropy 0.01"},
        "history": history,
    }
    if args.output:
        import json

        from legal_hpo_env.jsonable import finite_json

        Path(args.output).write_text(json.dumps(finite_json({"benchmark": "rllib_ppo", **payload}), indent=2) + "\n")
    else:
        write_result("rllib_ppo", payload)
    return payload


if __name__ == "__main__":
    main()
