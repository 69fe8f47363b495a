"""The ``finetune`` backend: real fine-tuning of the whole transformer.

AdamW with linear warmup and decay, dropout set on the model config, dynamic padding
over length-grouped batches, tokenisation cached once per (task, model, max length),
bf16 autocast on CUDA. The dev metric is read after every epoch; test is scored once,
on the weights of the best dev epoch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from legal_hpo_env.backends.base import Backend, EpochReport, Fidelity, TrialResult, build_result
from legal_hpo_env.backends.metrics import scores
from legal_hpo_env.backends.models import ModelLoadError, encode_task, load_tokenizer, model_config, resolve_model
from legal_hpo_env.backends.training import (
    class_weights,
    length_grouped_batches,
    pick_device,
    seed_everything,
    train_epochs,
)
from legal_hpo_env.space import HyperParams
from legal_hpo_env.tasks import TaskData

__all__ = ["FinetuneBackend", "collate", "class_logits", "predict"]


def collate(encoded: dict[str, list[list[int]]], indices: Sequence[int], pad_id: int, device: torch.device):
    """Pad the examples at ``indices`` to the longest of them (dynamic padding)."""
    ids = [encoded["input_ids"][i] for i in indices]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        attention[row, : len(x)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention}
    if "token_type_ids" in encoded:
        types = torch.zeros((len(ids), width), dtype=torch.long)
        for row, i in enumerate(indices):
            t = encoded["token_type_ids"][i]
            types[row, : len(t)] = torch.tensor(t)
        batch["token_type_ids"] = types
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def class_logits(model, encoded, pad_id: int, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Return the classifier's logits ``(examples, labels)``, in example order.

    Batches are sorted by length to pad little.
    """
    n = len(encoded["input_ids"])
    order = sorted(range(n), key=lambda i: len(encoded["input_ids"][i]))
    out = torch.zeros((n, model.config.num_labels))
    for start in range(0, n, batch_size):
        chunk = order[start : start + batch_size]
        with _autocast(device):
            logits = model(**collate(encoded, chunk, pad_id, device)).logits
        out[chunk] = logits.float().cpu()
    return out


def predict(model, encoded, pad_id: int, device: torch.device, batch_size: int = 64) -> list[int]:
    """Predicted labels, in example order."""
    return class_logits(model, encoded, pad_id, device, batch_size).argmax(-1).tolist()


class FinetuneBackend(Backend):
    """Fine-tune every weight of a pretrained transformer with a classification head.

    Args:
        model: Hugging Face model id or local folder; ``None`` for the packaged MiniLM.
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when present.
        test_each_epoch: also score test after every epoch (``extra["test_curve"]``), as
            a recording needs to replay shorter runs; costs one test pass per epoch.
    """

    name = "finetune"
    version = 1

    def __init__(self, model: str | None = None, device: str | None = None, test_each_epoch: bool = False) -> None:
        self.model_name = model
        self.device = pick_device(device)
        self.test_each_epoch = test_each_epoch

    def options(self) -> dict[str, Any]:
        return {"test_each_epoch": self.test_each_epoch}

    def evaluate(
        self, task: TaskData, config: HyperParams, fidelity: Fidelity, seed: int, *, progress: bool = False,
        save_to: str | os.PathLike | None = None, on_epoch: Callable[[EpochReport], bool] | None = None,
    ) -> TrialResult:
        from transformers import AutoModelForSequenceClassification

        start = time.perf_counter()
        tokenizer = load_tokenizer(self.model_name)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        encoded = encode_task(task, self.model_name, fidelity.max_length)
        keep = task.train_subset(fidelity.max_train)
        dev_keep, test_keep = task.subset("dev", fidelity.max_eval), task.subset("test", fidelity.max_eval)
        train, dev_inputs, test_inputs = (
            {k: [v[i] for i in ix] for k, v in encoded[split].items()}
            for split, ix in (("train", keep), ("dev", dev_keep), ("test", test_keep))
        )
        train_labels = [task.train[i].label for i in keep]
        generator = seed_everything(seed)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                resolve_model(self.model_name), config=model_config(self.model_name, task.num_labels, config.dropout)
            ).to(self.device)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load model {self.model_name!r} for classification: {e}") from e
        weights = class_weights(train_labels, task.num_labels, config.class_weighting)
        loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(self.device))
        labels = torch.tensor(train_labels, device=self.device)
        lengths = [len(x) for x in train["input_ids"]]
        steps_per_epoch = -(-len(keep) // config.batch_size)
        bar = tqdm(total=steps_per_epoch * config.epochs, desc=f"{task.name} finetune", disable=not progress,
                   leave=False)
        dev_labels = [task.dev[i].label for i in dev_keep]

        def step_loss(batch: list[int]) -> torch.Tensor:
            with _autocast(self.device):
                logits = model(**collate(train, batch, pad_id, self.device)).logits
            return loss_fn(logits.float(), labels[batch])

        test_labels = [task.test[i].label for i in test_keep]
        dev_history: list[dict[str, float]] = []
        test_history: list[dict[str, float]] = []

        def dev_score() -> float:
            dev_history.append(scores(dev_labels, predict(model, dev_inputs, pad_id, self.device)))
            if self.test_each_epoch:
                test_history.append(scores(test_labels, predict(model, test_inputs, pad_id, self.device)))
            return dev_history[-1][task.spec.metric]

        report = train_epochs(
            model,
            config,
            lambda: length_grouped_batches(lengths, config.batch_size, generator),
            step_loss,
            dev_score,
            steps_per_epoch=steps_per_epoch,
            on_step=bar.update,
            on_epoch=on_epoch,
        )
        bar.close()
        test = None
        if report.dev_curve and not test_history and not report.diverged:
            model.load_state_dict(report.best_state)
            model.eval()
            test = scores(test_labels, predict(model, test_inputs, pad_id, self.device))
        result = build_result(
            self,
            task,
            config,
            fidelity,
            seed,
            report=report,
            dev_history=dev_history,
            test_history=test_history,
            test=test,
            seconds=time.perf_counter() - start,
            sizes={"train": len(keep), "dev": len(dev_keep), "test": len(test_keep)},
        )
        if save_to is not None:
            _save(model, tokenizer, report, result, task, Path(save_to), fidelity.max_length)
        return result


def _save(model: Any, tokenizer: Any, report: Any, result: TrialResult, task: TaskData, folder: Path,
          max_length: int) -> None:
    """Save the best dev epoch's classifier the Hugging Face way, with its description and card."""
    from legal_hpo_env.model import write_model_files

    if report.diverged or report.best_state is None:
        raise ValueError("the run diverged: there is no model to save; choose another configuration.")
    folder.mkdir(parents=True, exist_ok=True)
    model.load_state_dict(report.best_state)
    model.config.id2label = dict(enumerate(task.label_names))
    model.config.label2id = {name: i for i, name in enumerate(task.label_names)}
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_model_files(folder, result, "finetune", max_length, encoder=None)
