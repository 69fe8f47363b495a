"""Reliability, divergence: very high learning rates give a valid result; diverged trials
are penalised, stored flagged and never the incumbent; an agent tunes on through them.

What a learning rate of 1.0 does to the tiny model is printed: run with ``-s`` to see it.
"""

from __future__ import annotations

import math
import sqlite3

import gymnasium as gym
import pytest

pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402,F401  (registers the env)
from agents import RandomSearch, config_to_action  # noqa: E402
from legal_hpo_env.backends import DIVERGED_SCORE, TrialResult, make_backend  # noqa: E402
from legal_hpo_env.backends import head as head_module  # noqa: E402
from legal_hpo_env.space import SPACE, HyperParams  # noqa: E402
from legal_hpo_env.store import TrialStore  # noqa: E402
from legal_hpo_env.tasks import load_task  # noqa: E402
from support import FAST  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

K = len(SPACE)


@pytest.fixture
def task(tiny_task):
    return load_task(tiny_task)



def assert_valid_result(result: TrialResult) -> None:
    """A trial result is either a clean diverged one or finite everywhere, never a NaN score."""
    assert all(math.isfinite(x) for x in result.train_loss)  # no NaN reaches the store
    if result.diverged:
        assert result.dev_score == result.test_score == DIVERGED_SCORE
        metrics = (result.dev_accuracy, result.dev_macro_f1, result.test_accuracy, result.test_macro_f1)
        assert set(metrics) == {DIVERGED_SCORE}
    else:
        assert len(result.train_loss) == result.config["epochs"]
        metrics = (result.dev_score, result.test_score, result.dev_accuracy, result.test_macro_f1)
        for value in (*metrics, *result.dev_curve):
            assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("backend", ["head", "finetune"])
def test_very_high_learning_rates_give_a_valid_result(backend, task, tiny_model):
    """Learning rates 1e-1 and 1.0 (the top of the valid range). On the tiny model the loss
    stays finite: AdamW's normalised steps and gradient clipping at norm 1 bound every
    update, so the loss grows (about tenfold at lr 1.0) but does not overflow. Whatever the
    model does, the result is a valid one: finite, or a clean diverged trial."""
    b = make_backend(backend, model=tiny_model, device="cpu")
    for lr in (1e-1, 1.0):
        config = HyperParams(learning_rate=lr, epochs=2, batch_size=4, warmup_ratio=0.0)
        result = b.evaluate(task, config, FAST, seed=0)
        assert_valid_result(result)
        print(f"\n[divergence] {backend} lr {lr:g}: diverged={result.diverged} train loss {result.train_loss}")


@pytest.fixture
def explodes_at_high_lr(monkeypatch):
    """The loss of a configuration with learning rate >= 1e-3 is NaN, as a large model's
    can be at such rates (the tiny model's is not; see above). Everything else (detection,
    result, store, env) is the real code."""
    original = head_module.train_epochs

    def train_epochs(model, config, batches, step_loss, evaluate_dev, **kwargs):
        def loss(batch):
            value = step_loss(batch)
            return value * math.nan if config.learning_rate >= 1e-3 else value

        return original(model, config, batches, loss, evaluate_dev, **kwargs)

    monkeypatch.setattr(head_module, "train_epochs", train_epochs)


def test_diverged_trials_are_penalised_stored_flagged_and_never_best(env_kwargs, tmp_path, explodes_at_high_lr):
    store = tmp_path / "trials.db"
    kwargs = {**env_kwargs, "action_mode": "direct", "reward": "improvement", "diverged_penalty": 0.3,
              "store": str(store)}
    env = gym.make("LegalHPO-v0", **{**kwargs, "budget": 4})
    high = config_to_action(HyperParams(learning_rate=1e-2, epochs=2))
    low = config_to_action(HyperParams(learning_rate=1e-4, epochs=2))
    env.reset(seed=0)

    obs, reward, _, _, info = env.step(high)
    assert info["diverged"] and reward == -0.3 and info["best_config"] is None
    assert obs[K + 2] == 1.0 and obs[K + 4] == 1.0 and obs in env.observation_space
    obs, reward, _, _, info = env.step(low)
    assert not info["diverged"] and reward == pytest.approx(info["dev_score"]) and obs[K + 4] == 0.0
    assert info["best_config"]["learning_rate"] == 1e-4
    _, reward, _, _, info = env.step(high)  # asked again: still diverged, never the incumbent
    assert info["diverged"] and reward == -0.3 and info["best_config"]["learning_rate"] == 1e-4

    # Persisted, as results are, but flagged: a lookup returns it diverged, never a success.
    stored = {r.config["learning_rate"]: r for r in TrialStore(store).results()}
    assert sorted(stored) == [1e-4, 1e-2]
    bad = stored[1e-2]
    assert bad.diverged and bad.from_store and bad.dev_curve == [] and bad.selected_epoch == 0
    assert_valid_result(bad)
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT diverged, dev_score, result FROM trials").fetchall()
    assert sorted((d, s) for d, s, _ in rows) == [(0, stored[1e-4].dev_score), (1, DIVERGED_SCORE)]
    assert all("NaN" not in text and "Infinity" not in text for _, _, text in rows)  # strict JSON

    # After a restart (a new env on the same store) it comes back from the store, diverged.
    fresh = gym.make("LegalHPO-v0", **{**kwargs, "budget": 2})
    fresh.reset(seed=0)
    obs, reward, _, _, info = fresh.step(high)
    assert info["from_store"] and info["diverged"] and reward == -0.3 and info["best_config"] is None
    assert obs[K + 4] == 1.0


def test_an_agent_tunes_on_through_diverging_trials(env_kwargs, explodes_at_high_lr):
    env = gym.make("LegalHPO-v0", **{**env_kwargs, "budget": 8, "action_mode": "direct"})
    run = RandomSearch().run(env, seed=1)
    assert run.trials == 8
    diverged = [c["learning_rate"] >= 1e-3 for c in run.configs]
    assert 0 < sum(diverged) < 8  # this seed draws both kinds
    assert all(s == DIVERGED_SCORE for s, d in zip(run.dev_scores, diverged) if d)
    assert run.best_config is not None and run.best_config["learning_rate"] < 1e-3
    assert run.best_score == max(s for s, d in zip(run.dev_scores, diverged) if not d)
