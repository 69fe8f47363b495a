"""The live backends on a tiny BERT and a tiny task, and the training pieces they share."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from legal_hpo_env.backends import (  # noqa: E402
    BACKENDS,
    DIVERGED_SCORE,
    Fidelity,
    TrialResult,
    UnknownBackendError,
    make_backend,
)
from legal_hpo_env.backends import finetune as finetune_module  # noqa: E402
from legal_hpo_env.backends import head as head_module  # noqa: E402
from legal_hpo_env.backends.metrics import scores  # noqa: E402
from legal_hpo_env.backends.models import ModelLoadError, load_tokenizer, model_config  # noqa: E402
from legal_hpo_env.backends.training import (  # noqa: E402
    class_weights,
    length_grouped_batches,
    linear_schedule,
    make_optimizer,
    seed_everything,
)
from legal_hpo_env.space import HyperParams  # noqa: E402
from legal_hpo_env.tasks import load_task  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = Fidelity(max_length=32)
# Varies over epochs on the tiny task, so that the selected epoch is not trivially the first.
CONFIG = HyperParams(epochs=3, learning_rate=1e-2, batch_size=4)


@pytest.fixture
def task(tiny_task):
    return load_task(tiny_task)


def check_result(result: TrialResult, task, backend: str, config: HyperParams, fidelity: Fidelity, seed: int) -> None:
    assert isinstance(result, TrialResult)
    assert (result.task, result.backend, result.seed, result.metric) == (task.name, backend, seed, "macro_f1")
    assert result.config == config.to_dict() and result.fidelity == fidelity.to_dict()
    assert not result.diverged and not result.from_store
    assert len(result.dev_curve) == len(result.train_loss) == config.epochs
    assert all(0.0 <= s <= 1.0 for s in result.dev_curve)
    assert all(math.isfinite(loss) and loss > 0 for loss in result.train_loss)
    best = max(range(len(result.dev_curve)), key=lambda i: result.dev_curve[i])
    assert result.selected_epoch == best + 1
    assert result.dev_score == result.dev_curve[best] == result.dev_macro_f1
    assert 0.0 <= result.test_score <= 1.0 and result.test_score == result.test_macro_f1
    assert 0.0 <= result.dev_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert result.sizes == {"train": 42, "dev": 9, "test": 9}  # 20 per class: 3 dev, 3 test, 14 train
    assert result.data_hash == task.data_hash
    assert result.seconds > 0 and result.device == "cpu"
    assert result.code_version == f"{backend}.1"  # the backend's semantic version, not the package's
    assert result.extra["label_names"] == ["Arbitration", "Other", "Termination"]
    assert result.final_train_loss == result.train_loss[-1]


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_trial_result_fields(backend, task, tiny_model):
    result = make_backend(backend, model=tiny_model, device="cpu").evaluate(task, CONFIG, FAST, seed=0)
    check_result(result, task, backend, CONFIG, FAST, 0)
    assert result.model == tiny_model
    # TrialResult survives its dict form (what the store keeps).
    assert TrialResult.from_dict(result.to_dict()) == result
    assert "from_store" not in result.to_dict()


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_same_seed_same_result(backend, task, tiny_model):
    b = make_backend(backend, model=tiny_model, device="cpu")
    config = HyperParams(epochs=2, learning_rate=3e-3, batch_size=8, dropout=0.2)
    first, again = b.evaluate(task, config, FAST, seed=3), b.evaluate(task, config, FAST, seed=3)
    fresh = make_backend(backend, model=tiny_model, device="cpu").evaluate(task, config, FAST, seed=3)
    for other in (again, fresh):
        assert other.dev_curve == first.dev_curve
        assert other.train_loss == first.train_loss
        assert (other.test_score, other.selected_epoch) == (first.test_score, first.selected_epoch)
    other_seed = b.evaluate(task, config, FAST, seed=4)
    assert other_seed.train_loss != first.train_loss


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_max_train_fidelity(backend, task, tiny_model):
    fidelity = Fidelity(max_train=12, max_length=32)
    result = make_backend(backend, model=tiny_model, device="cpu").evaluate(
        task, HyperParams(epochs=1), fidelity, seed=0
    )
    assert result.sizes == {"train": 12, "dev": 9, "test": 9}
    assert result.fidelity == {"max_train": 12, "max_length": 32}


def write_easy_csv(path: Path) -> Path:
    """Three classes told apart by one repeated keyword: trivially learnable."""
    rng = random.Random(1)
    keywords = {"arbitration": "Arbitration", "terminate": "Termination", "service": "Other"}
    lines = ["text,label"]
    for i in range(60):
        word = list(keywords)[i % 3]
        lines.append(f"{rng.choice(['the', 'a', 'of', 'any'])} {word} {word} {word},{keywords[word]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("backend", "config"),
    [
        ("head", HyperParams(epochs=5, learning_rate=1e-3, batch_size=8)),
        ("finetune", HyperParams(epochs=5, learning_rate=3e-3, batch_size=4)),
    ],
)
def test_backends_learn_an_easy_task(backend, config, tmp_path, tiny_model):
    task = load_task(f"custom:{write_easy_csv(tmp_path / 'easy.csv')}")
    result = make_backend(backend, model=tiny_model, device="cpu").evaluate(task, config, FAST, seed=0)
    assert result.dev_score >= 0.8  # chance is 1/3
    assert result.train_loss[-1] < result.train_loss[0]


def test_tiny_tokenizer_knows_its_words(tiny_model):
    ids = load_tokenizer(tiny_model)("the arbitration terminate")["input_ids"]
    assert 1 not in ids and len(ids) == 5  # [CLS] 3 words [SEP], none of them [UNK]


# -- divergence --------------------------------------------------------------------


def nan_after(calls: int):
    """A CrossEntropyLoss whose loss turns NaN after ``calls`` calls."""
    original = torch.nn.CrossEntropyLoss
    seen = Counter()

    class NanLoss(original):
        def forward(self, input, target):
            seen["calls"] += 1
            loss = super().forward(input, target)
            return loss * float("nan") if seen["calls"] > calls else loss

    return NanLoss


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_nan_loss_is_a_diverged_result(backend, task, tiny_model, monkeypatch):
    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", nan_after(0))
    result = make_backend(backend, model=tiny_model, device="cpu").evaluate(task, CONFIG, FAST, seed=0)
    assert result.diverged
    assert result.dev_score == result.test_score == DIVERGED_SCORE
    assert result.dev_curve == [] and result.selected_epoch == 0
    assert result.train_loss == []  # finished epochs only: no NaN reaches the store
    assert result.dev_accuracy == result.test_macro_f1 == DIVERGED_SCORE


def test_divergence_after_an_epoch_keeps_the_curve(task, tiny_model, monkeypatch):
    # 42 examples in batches of 4: 11 steps per epoch; NaN from the 12th step on
    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", nan_after(11))
    result = make_backend("head", model=tiny_model, device="cpu").evaluate(task, CONFIG, FAST, seed=0)
    assert result.diverged and result.dev_score == DIVERGED_SCORE
    assert len(result.dev_curve) == 1 and result.selected_epoch == 1
    assert len(result.train_loss) == 1 and math.isfinite(result.train_loss[0])
    # every metric of a diverged run is DIVERGED_SCORE, whatever its epochs before
    assert result.dev_accuracy == result.dev_macro_f1 == result.test_accuracy == DIVERGED_SCORE


def test_infinite_gradient_is_divergence(task, tiny_model, monkeypatch):
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: torch.tensor(math.inf))
    result = make_backend("head", model=tiny_model, device="cpu").evaluate(task, CONFIG, FAST, seed=0)
    assert result.diverged and result.dev_score == DIVERGED_SCORE and result.dev_curve == []


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_an_epoch_callback_sees_every_epoch_and_can_stop_the_run(backend, task, tiny_model):
    seen = []

    def stop_after_two(report) -> bool:
        seen.append((list(report.dev_curve), len(report.train_loss)))
        return len(report.dev_curve) < 2

    trainer = make_backend(backend, model=tiny_model, device="cpu")
    stopped = trainer.evaluate(task, CONFIG, FAST, seed=0, on_epoch=stop_after_two)
    assert [n for _, n in seen] == [1, 2] and seen[-1][0] == stopped.dev_curve
    assert len(stopped.dev_curve) == len(stopped.train_loss) == 2 and not stopped.diverged
    assert stopped.extra["stopped_after_epoch"] == 2 and 1 <= stopped.selected_epoch <= 2
    assert 0.0 <= stopped.test_score <= 1.0  # a normal result, of the epochs it reached
    whole = trainer.evaluate(task, CONFIG, FAST, seed=0, on_epoch=lambda report: len(report.dev_curve) < 3)
    # False after the last epoch stops nothing: the whole run, as without a callback
    assert "stopped_after_epoch" not in whole.extra
    assert whole.dev_curve == trainer.evaluate(task, CONFIG, FAST, seed=0).dev_curve


# -- models, features, errors ------------------------------------------------------


def test_dropout_is_set_on_the_model_config(tiny_model, task, monkeypatch):
    config = model_config(tiny_model, num_labels=3, dropout=0.25)
    assert config.num_labels == 3
    assert config.hidden_dropout_prob == 0.25 and config.attention_probs_dropout_prob == 0.25
    seen = []

    def spy(name, num_labels, dropout):
        seen.append(model_config(name, num_labels, dropout))
        return seen[-1]

    monkeypatch.setattr(finetune_module, "model_config", spy)
    make_backend("finetune", model=tiny_model, device="cpu").evaluate(
        task, HyperParams(epochs=1, dropout=0.3), Fidelity(max_train=6, max_length=16), seed=0
    )
    assert [(c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.num_labels) for c in seen] == [(0.3, 0.3, 3)]


def test_head_features_are_cached_on_disk(task, tiny_model, tmp_path):
    device = torch.device("cpu")
    features = head_module.encoder_features(task, tiny_model, 32, device)
    assert {k: v.shape for k, v in features.items()} == {"train": (42, 32), "dev": (9, 32), "test": (9, 32)}
    files = list((tmp_path / "cache" / "features").glob("*.npz"))  # LEGAL_HPO_CACHE, from conftest
    assert len(files) == 1
    head_module._MEMORY.clear()
    again = head_module.encoder_features(task, tiny_model, 32, device)
    assert all(np.array_equal(features[k], again[k]) for k in features)
    # a torn cache file is recomputed, not an error
    head_module._MEMORY.clear()
    files[0].write_bytes(b"torn")
    with pytest.warns(UserWarning, match="is damaged"):
        recomputed = head_module.encoder_features(task, tiny_model, 32, device)
    assert all(np.allclose(features[k], recomputed[k], atol=1e-6) for k in features)


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_unloadable_model(backend, task, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError) as info:
        make_backend(backend, model=missing, device="cpu").evaluate(task, HyperParams(epochs=1), FAST, seed=0)
    message = str(info.value)
    assert missing in message and "not a local folder" in message


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(UnknownBackendError) as info:
        make_backend("lora")
    assert "'lora'" in str(info.value)
    for name in BACKENDS:
        assert name in str(info.value)
    assert isinstance(info.value, ValueError)


def test_fidelity_validation():
    assert Fidelity(max_train=np.int64(5)).max_train == 5 and type(Fidelity(max_train=np.int64(5)).max_train) is int
    for bad in ({"max_train": 0}, {"max_train": True}, {"max_length": 4}, {"max_length": 10_000}, {"max_length": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Fidelity(**bad)


# -- training pieces, hand-computed ------------------------------------------------


def test_class_weights_balanced_hand_computed():
    assert class_weights([0, 1, 1], 3, "none") is None
    # counts [3, 1, 0], n = 4, k = 2 classes present: n / (k * count) = [4/6, 4/2, 0]
    weights = class_weights([0, 0, 0, 1], 3, "balanced")
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx([2 / 3, 2.0, 0.0])
    # balanced classes: all ones
    assert class_weights([0, 1, 2, 0, 1, 2], 3, "balanced").tolist() == pytest.approx([1.0, 1.0, 1.0])


def learning_rates(peak: float, total_steps: int, warmup_ratio: float, steps: int) -> list[float]:
    """The learning rate of each of ``steps`` optimiser steps under ``linear_schedule``."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = linear_schedule(optimizer, total_steps=total_steps, warmup_ratio=warmup_ratio)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_linear_schedule_hand_computed():
    # warmup = ceil(10 * 0.2) = 2 steps: (s + 1) / 2; then (10 - s) / 8 down to 0
    assert learning_rates(1.0, 10, 0.2, 11) == pytest.approx(
        [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]
    )
    assert learning_rates(2.0, 4, 0.0, 4) == pytest.approx([2.0, 1.5, 1.0, 0.5])


def test_optimizer_decays_weights_only():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    optimizer = make_optimizer(model, HyperParams(weight_decay=0.1, learning_rate=1e-3))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([2, 3])]
    assert len(no_decay["params"]) == 3  # linear bias, norm weight and bias
    assert all(g["lr"] == 1e-3 for g in optimizer.param_groups)


def test_length_grouped_batches_cover_every_index_once():
    rng = random.Random(0)
    lengths = [rng.randint(1, 200) for _ in range(237)]
    batches = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0), group=5)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(237))
    assert all(1 <= len(b) <= 8 for b in batches)
    # mega-batches of 40: 5 full batches each, the last of 37 examples gives 4 + 1 batches
    assert sorted(len(b) for b in batches) == [5] + [8] * 29
    # deterministic in the generator, different for another seed
    assert batches == length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0), group=5)
    assert batches != length_grouped_batches(lengths, 8, torch.Generator().manual_seed(1), group=5)


def test_length_grouped_batches_are_length_homogeneous():
    rng = random.Random(1)
    lengths = [rng.randint(1, 500) for _ in range(100)]
    # one mega-batch holds everything: batches are consecutive runs of the sorted lengths
    batches = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0), group=50)
    spans = sorted(((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches), reverse=True)
    for (low, _), (_, next_high) in zip(spans, spans[1:]):
        assert low >= next_high  # no two batches' length ranges interleave
    padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    order = list(range(100))
    random.Random(2).shuffle(order)
    shuffled = [order[j : j + 8] for j in range(0, 100, 8)]
    random_padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in shuffled)
    assert padding < random_padding / 4


def test_seed_everything_generator():
    a = torch.randperm(10, generator=seed_everything(7)).tolist()
    b = torch.randperm(10, generator=seed_everything(7)).tolist()
    assert a == b and sorted(a) == list(range(10))


def test_scores_hand_computed():
    result = scores([0, 0, 1, 1], [0, 1, 1, 1])
    # class 0: P 1, R 1/2, F1 2/3; class 1: P 2/3, R 1, F1 4/5
    assert result["accuracy"] == 0.75
    assert result["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores([0, 1, 2], [0, 0, 0])["macro_f1"] == pytest.approx((0.5 + 0 + 0) / 3)
