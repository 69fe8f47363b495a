"""The ``head`` backend: a frozen encoder, a trained classification head.

The encoder's mean-pooled features are computed once per (task, model, max length) and
cached on disk; each trial then trains a dropout + linear head on them with the same
hyperparameters, optimiser, schedule and loss as ``finetune``. Seconds per trial: the
fast real mode for experiments and tests.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from legal_hpo_env.backends.base import Backend, EpochReport, Fidelity, TrialResult, build_result
from legal_hpo_env.backends.finetune import collate
from legal_hpo_env.backends.metrics import scores
from legal_hpo_env.backends.models import (
    ModelLoadError,
    encode_task,
    load_tokenizer,
    model_fingerprint,
    resolve_model,
)
from legal_hpo_env.backends.training import class_weights, pick_device, seed_everything, train_epochs
from legal_hpo_env.space import HyperParams
from legal_hpo_env.tasks import TaskData

__all__ = ["HeadBackend", "cache_dir", "encoder_features", "mean_pooled"]

CACHE_ENV_VAR = "LEGAL_HPO_CACHE"


def cache_dir() -> Path:
    """Where features are cached: ``$LEGAL_HPO_CACHE`` or ``~/.cache/legal_hpo``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "legal_hpo").expanduser()


@torch.inference_mode()
def mean_pooled(model, encoded, pad_id: int, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled last-layer features of the encoded examples, in example order."""
    n = len(encoded["input_ids"])
    order = sorted(range(n), key=lambda i: len(encoded["input_ids"][i]))
    out = np.zeros((n, model.config.hidden_size), dtype=np.float32)
    for start in range(0, n, batch_size):
        chunk = order[start : start + batch_size]
        batch = collate(encoded, chunk, pad_id, device)
        hidden = model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out[chunk] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)).cpu().numpy()
    return out


_MEMORY: dict[str, dict[str, np.ndarray]] = {}


def encoder_features(task: TaskData, model: str | None, max_length: int, device: torch.device) -> dict[str, np.ndarray]:
    """Mean-pooled features of every split, from memory, the disk cache, or one encoder pass."""
    key = (f"{task.name.replace('/', '_').replace(':', '_')[-80:]}-{task.data_hash}-"
           f"{model_fingerprint(model)}-{max_length}")
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / "features" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:  # arrays only: a cache file runs no code
                features = {split: data[split] for split in ("train", "dev", "test")}
            damage = _damage(features, task)
        except (OSError, ValueError, KeyError) as e:  # a torn write from a killed process, say
            damage = f"unreadable: {e}"
        if damage is None:
            _MEMORY[key] = features
            return features
        warnings.warn(f"feature cache {path} is damaged ({damage}): computing the features again.", stacklevel=2)
        path.unlink(missing_ok=True)
    from transformers import AutoModel

    tokenizer = load_tokenizer(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = encode_task(task, model, max_length)
    try:
        encoder = AutoModel.from_pretrained(resolve_model(model)).to(device).eval()
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load encoder {model!r}: {e}") from e
    features = {split: mean_pooled(encoder, encoded[split], pad_id, device) for split in ("train", "dev", "test")}
    del encoder
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_writes(path.parent, key)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **features)
    os.replace(tmp, path)  # atomic: readers see the whole file or none
    _MEMORY[key] = features
    return features


def _damage(features: dict[str, np.ndarray], task: TaskData) -> str | None:
    """Say what is wrong with cached features, or return ``None``.

    Whole features have one row per example of each split, one width, finite values and no
    all-zero row (a mean-pooled encoder output never is).
    """
    widths = {f.shape[1] if f.ndim == 2 else 0 for f in features.values()}
    if len(widths) != 1 or 0 in widths:
        return f"feature widths {sorted(widths)} differ or are empty"
    for split, values in features.items():
        examples = len(getattr(task, split))
        if values.shape[0] != examples:
            return f"{split} has {values.shape[0]} rows for {examples} examples"
        if not np.isfinite(values).all():
            return f"{split} holds non-finite values"
        if (~values.any(axis=1)).any():
            return f"{split} holds all-zero rows"
    return None


def _remove_stale_writes(folder: Path, key: str) -> None:
    """Delete the temporary files of writes whose process died (killed mid-write)."""
    for stale in folder.glob(f"{key}.*.tmp.npz"):
        pid = stale.name[len(key) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class HeadBackend(Backend):
    """Train a dropout + linear head on frozen, cached encoder features.

    Args:
        model: Hugging Face model id or local folder; ``None`` for the packaged MiniLM.
        device: ``None`` picks CUDA when present.
    """

    name = "head"
    version = 1

    def __init__(self, model: str | None = None, device: str | None = None) -> None:
        self.model_name = model
        self.device = pick_device(device)

    def evaluate(
        self, task: TaskData, config: HyperParams, fidelity: Fidelity, seed: int, *, progress: bool = False,
        save_to: str | os.PathLike | None = None, on_epoch: Callable[[EpochReport], bool] | None = None,
    ) -> TrialResult:
        features = encoder_features(task, self.model_name, fidelity.max_length, self.device)
        start = time.perf_counter()
        keep = task.train_subset(fidelity.max_train)
        # Standardised with training statistics, so that one learning-rate grid suits the
        # head and full fine-tuning (raw pooled features are small and anisotropic).
        mean = features["train"][keep].mean(0)
        std = features["train"][keep].std(0) + 1e-6
        dev_keep, test_keep = task.subset("dev", fidelity.max_eval), task.subset("test", fidelity.max_eval)
        x_train, x_dev, x_test = (
            torch.from_numpy((x - mean) / std).to(self.device)
            for x in (features["train"][keep], features["dev"][dev_keep], features["test"][test_keep])
        )
        y_train = torch.tensor([task.train[i].label for i in keep], device=self.device)
        generator = seed_everything(seed)
        head = torch.nn.Sequential(
            torch.nn.Dropout(config.dropout), torch.nn.Linear(x_train.shape[1], task.num_labels)
        ).to(self.device)
        weights = class_weights(y_train.tolist(), task.num_labels, config.class_weighting)
        loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(self.device))
        n = len(keep)
        steps_per_epoch = -(-n // config.batch_size)
        dev_labels = [task.dev[i].label for i in dev_keep]
        test_labels = [task.test[i].label for i in test_keep]
        dev_history: list[dict[str, float]] = []
        test_history: list[dict[str, float]] = []  # test is cheap here: scored every epoch

        def batches() -> list[list[int]]:
            order = torch.randperm(n, generator=generator).tolist()
            return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]

        def step_loss(batch: list[int]) -> torch.Tensor:
            return loss_fn(head(x_train[batch]), y_train[batch])

        def dev_score() -> float:
            with torch.inference_mode():
                dev_history.append(scores(dev_labels, head(x_dev).argmax(-1).tolist()))
                test_history.append(scores(test_labels, head(x_test).argmax(-1).tolist()))
            return dev_history[-1][task.spec.metric]

        report = train_epochs(head, config, batches, step_loss, dev_score, steps_per_epoch=steps_per_epoch,
                              on_epoch=on_epoch)
        result = build_result(
            self,
            task,
            config,
            fidelity,
            seed,
            report=report,
            dev_history=dev_history,
            test_history=test_history,
            seconds=time.perf_counter() - start,
            sizes={"train": n, "dev": len(dev_keep), "test": len(test_keep)},
        )
        if save_to is not None:
            if report.diverged or report.best_state is None:
                raise ValueError("the run diverged: there is no model to save; choose another configuration.")
            _save_head(report.best_state, mean, std, result, Path(save_to), fidelity.max_length, self.model_name)
        return result


def _save_head(state: dict, mean: np.ndarray, std: np.ndarray, result: TrialResult, folder: Path, max_length: int,
               encoder: str | None) -> None:
    """Save the best dev epoch's head and the feature standardisation, with a reference to the encoder."""
    from safetensors.torch import save_file

    from legal_hpo_env.model import HEAD_WEIGHTS, write_model_files

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"weight": state["1.weight"], "bias": state["1.bias"],  # Sequential(Dropout, Linear)
               "mean": torch.from_numpy(np.ascontiguousarray(mean)), "std": torch.from_numpy(np.ascontiguousarray(std))}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / HEAD_WEIGHTS))
    write_model_files(folder, result, "head", max_length, encoder=encoder)
