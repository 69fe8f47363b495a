"""Training throughput of the ``finetune`` loop against Hugging Face ``Trainer``.

Same model (all-MiniLM-L6-v2), data (unfair_tos training examples), batch size, max
length, learning rate, warmup and epochs; Trainer at its best setting on this machine
(length-grouped sampling, dynamic padding). The two alternate, ``--repeats`` times
each, in one process, and the ratio of medians is reported. Also the peak memory
(RSS) of one whole ``finetune`` trial, measured in a fresh subprocess.

    pip install -e '.[bench]'   # Trainer needs accelerate
    python -m benchmarks.throughput [--examples 480] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.common import data_dir, write_result


def ours(task, config, fidelity) -> float:
    from legal_hpo_env.backends.finetune import FinetuneBackend

    result = FinetuneBackend().evaluate(task, config, fidelity, seed=0)
    return result.sizes["train"] * config.epochs / result.extra["train_seconds"]


def trainer(task, config, fidelity) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    from legal_hpo_env.backends.models import encode_task, load_tokenizer, model_config, resolve_model

    tokenizer = load_tokenizer(None)
    encoded = encode_task(task, None, fidelity.max_length)["train"]
    keep = task.train_subset(fidelity.max_train)
    rows = [
        {**{k: v[i] for k, v in encoded.items()}, "labels": task.train[i].label} for i in keep
    ]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model(None), config=model_config(None, task.num_labels, config.dropout)
    )
    args = TrainingArguments(
        output_dir="/tmp/legal-hpo-trainer-bench",
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        train_sampling_strategy="group_by_length",
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    run = Trainer(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    run.train()
    return len(rows) * config.epochs / (time.perf_counter() - start)


def peak_rss_of_one_trial(examples: int, max_length: int) -> float:
    """Peak resident memory (MiB) of a fresh process running one finetune trial."""
    code = (
        "from legal_hpo_env import evaluate; "
        f"evaluate('unfair_tos', {{'epochs': 1}}, backend='finetune', max_train={examples}, "
        f"max_length={max_length}, data_dir={data_dir()!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=480)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.space import HyperParams
    from legal_hpo_env.tasks import load_task

    task = load_task("unfair_tos", data_dir())
    config = HyperParams(learning_rate=3e-5, batch_size=8, epochs=1)
    fidelity = Fidelity(max_train=args.examples, max_length=args.max_length)
    ours(task, config, Fidelity(max_train=16, max_length=args.max_length))  # warm-up: tokenise, load once
    runs = {"legal_hpo_finetune": [], "hf_trainer_group_by_length": []}
    for _ in range(args.repeats):  # alternate, so that machine noise hits both alike
        runs["legal_hpo_finetune"].append(ours(task, config, fidelity))
        runs["hf_trainer_group_by_length"].append(trainer(task, config, fidelity))
        print({k: round(v[-1], 1) for k, v in runs.items()})
    medians = {k: statistics.median(v) for k, v in runs.items()}
    write_result(
        "throughput",
        {
            "command": "python -m benchmarks.throughput " + " ".join(sys.argv[1:]),
            "setup": {"task": "unfair_tos", "examples": args.examples, "max_length": args.max_length,
                      "config": config.to_dict(), "repeats": args.repeats, "seed": 0},
            "examples_per_second": runs,
            "median_examples_per_second": medians,
            "speedup_vs_trainer": medians["legal_hpo_finetune"] / medians["hf_trainer_group_by_length"],
            "peak_rss_mib_one_trial": peak_rss_of_one_trial(args.examples, args.max_length),
        },
    )


if __name__ == "__main__":
    main()
