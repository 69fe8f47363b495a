"""Torch pieces shared by the live backends.

Seeding, batching, optimiser, schedule, loss weights and the epoch loop with divergence
detection.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from legal_hpo_env.backends.base import EpochReport
from legal_hpo_env.space import HyperParams

__all__ = [
    "seed_everything",
    "pick_device",
    "length_grouped_batches",
    "class_weights",
    "make_optimizer",
    "linear_schedule",
    "EpochReport",
    "train_epochs",
]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` as a torch device (``None``: CUDA when present, else the CPU)."""
    if device is not None:
        try:
            return torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(
                f"device={device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:1' or 'mps' ({e})."
            ) from e
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator, group: int = 50
) -> list[list[int]]:
    """Random batches of similar-length examples, so that dynamic padding pads little.

    The examples are shuffled, cut into mega-batches of ``group * batch_size``, sorted by
    length inside each, cut into batches; the batches are then shuffled (as in
    Hugging Face's ``LengthGroupedSampler``).
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    mega = group * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def class_weights(labels: Sequence[int], num_labels: int, mode: str) -> torch.Tensor | None:
    """Class weights of the loss: ``None`` for plain cross-entropy, or scikit-learn's ``balanced`` weights.

    The ``balanced`` weights are n / (k * count), with k the number of classes present in training.
    """
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels), minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def make_optimizer(model: torch.nn.Module, config: HyperParams) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on weights, none on biases and norms."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA) updates all parameters in one pass: the same maths,
    # fewer passes over memory.
    device = next(model.parameters()).device.type
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device in ("cpu", "cuda"))


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup from 0 to the peak learning rate, then linear decay to 0."""
    warmup = int(math.ceil(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epochs(
    model: torch.nn.Module,
    config: HyperParams,
    batches_per_epoch: Callable[[], list[list[int]]],
    step_loss: Callable[[list[int]], torch.Tensor],
    evaluate_dev: Callable[[], float],
    *,
    steps_per_epoch: int,
    max_grad_norm: float = 1.0,
    on_step: Callable[[], None] | None = None,
    on_epoch: Callable[[EpochReport], bool] | None = None,
) -> EpochReport:
    """The epoch loop both live backends share.

    Each epoch trains on ``batches_per_epoch()`` then reads the dev headline metric. The
    weights of the best dev epoch are kept (in memory) so that the caller can score test
    on them. A non-finite loss or gradient norm stops training: the run is diverged.
    After every epoch ``on_epoch`` (if given) sees the run so far (without weights); when
    it returns ``False`` training stops there, and the report says ``stopped``.
    """
    optimizer = make_optimizer(model, config)
    scheduler = linear_schedule(optimizer, steps_per_epoch * config.epochs, config.warmup_ratio)
    params = [p for p in model.parameters() if p.requires_grad]
    dev_curve: list[float] = []
    train_loss: list[float] = []
    best_state, best_score = None, -math.inf
    train_seconds = 0.0

    def diverged() -> EpochReport:
        # train_loss keeps the finished epochs only: no NaN reaches results or the store
        return EpochReport(dev_curve, train_loss, _argmax(dev_curve), True, best_state, train_seconds)

    for _ in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        started = time.perf_counter()
        for batch in batches_per_epoch():
            loss = step_loss(batch)
            if not torch.isfinite(loss):
                return diverged()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            if not torch.isfinite(norm):
                return diverged()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch)
            count += len(batch)
            if on_step is not None:
                on_step()
        train_seconds += time.perf_counter() - started
        train_loss.append(total / max(1, count))
        model.eval()
        score = evaluate_dev()
        dev_curve.append(score)
        if score > best_score:
            best_score = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            so_far = EpochReport(list(dev_curve), list(train_loss), _argmax(dev_curve), False, None, train_seconds)
            # after the last epoch there is nothing left to stop: the run is whole
            if on_epoch(so_far) is False and len(dev_curve) < config.epochs:
                return EpochReport(dev_curve, train_loss, _argmax(dev_curve), False, best_state, train_seconds,
                                   stopped=True)
    return EpochReport(dev_curve, train_loss, _argmax(dev_curve), False, best_state, train_seconds)


def _argmax(values: Iterable[float]) -> int:
    values = list(values)
    return max(range(len(values)), key=lambda i: values[i]) if values else -1
