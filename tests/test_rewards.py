"""Rewards: the reward functions by hand, and the rewards LegalHPO-v0 pays (score,
improvement, cost and divergence penalties, regret only on a replayed task)."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import legal_hpo_env  # noqa: F401  (registers the env)
from legal_hpo_env.landscape import Landscape
from legal_hpo_env.rewards import improvement_reward, regret_reward, score_reward, shaped_reward
from legal_hpo_env.space import SPACE

K = len(SPACE)


def trains(test):
    """The env's rewards on a live backend train the tiny model: torch, on one thread
    (the reward functions themselves need no torch)."""
    needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
    return needs_torch(pytest.mark.usefixtures("torch_one_thread")(test))


# -- the reward functions ----------------------------------------------------------


def test_reward_functions_hand_computed():
    assert score_reward(0.7, 0.9) == 0.7
    assert improvement_reward(0.5, 0.3) == pytest.approx(0.2)
    assert improvement_reward(0.2, 0.3) == 0.0
    kw = dict(seconds=2.0, cost_penalty=0.1, diverged_penalty=0.5)
    assert shaped_reward("score", 0.7, 0.2, diverged=True, **kw) == pytest.approx(-0.7)
    assert shaped_reward("improvement", 0.7, 0.2, diverged=False, **kw) == pytest.approx(0.3)
    assert shaped_reward("score", 0.7, 0.2, diverged=False, **kw) == pytest.approx(0.5)


def test_regret_reward_is_minus_the_incumbents_normalised_regret():
    land = Landscape(best=0.9, median=0.5, worst=0.1, configurations=3)
    assert regret_reward(0.5, 0.7, landscape=land) == pytest.approx(-0.25)  # incumbent 0.7
    assert regret_reward(0.9, 0.7, landscape=land) == 0.0
    assert regret_reward(0.95, 0.7, landscape=land) == 0.0  # a lucky seed above the best mean: no bonus
    assert shaped_reward("regret", 0.0, 0.7, diverged=True, seconds=10, cost_penalty=0.01, diverged_penalty=0.5,
                         landscape=land) == pytest.approx(-0.25 - 0.5 - 0.1)
    with pytest.raises(ValueError, match="replayed"):
        shaped_reward("regret", 0.5, 0.0, diverged=False, seconds=0, cost_penalty=0, diverged_penalty=0)


# -- the rewards of LegalHPO-v0 ---------------------------------------------------


@trains
def test_improvement_rewards_sum_to_the_best_score(make):
    env = make(reward="improvement", budget=5, start="random")
    env.reset(seed=3)
    env.action_space.seed(3)
    rewards, scores = [], []
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        rewards.append(reward)
        scores.append(info["dev_score"])
        assert not info["diverged"]
    assert sum(rewards) == pytest.approx(max(scores))
    # each reward is the gain of the running best (hand-checked from the scores)
    best, expected = 0.0, []
    for s in scores:
        expected.append(max(0.0, s - best))
        best = max(best, s)
    assert rewards == pytest.approx(expected)


@trains
def test_score_reward_and_cost_penalty(make):
    env = make(reward="score", budget=3)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.ones(K, dtype=int))
    assert reward == pytest.approx(info["dev_score"])
    env = make(reward="score", budget=3, cost_penalty=0.5)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.full(K, 2))
    assert not info["from_store"] and info["seconds"] > 0
    assert reward == pytest.approx(info["dev_score"] - 0.5 * info["seconds"])


@trains
def test_diverged_trial_gets_the_penalty(make, monkeypatch):
    import torch

    class NanLoss(torch.nn.CrossEntropyLoss):
        def forward(self, input, target):
            return super().forward(input, target) * float("nan")

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", NanLoss)
    env = make(reward="improvement", budget=2, diverged_penalty=0.25)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(np.ones(K, dtype=int))
    assert info["diverged"] and reward == -0.25
    assert obs[K + 2] == 1.0 and obs[K + 4] == 1.0 and info["best_config"] is None
    obs, reward, terminated, _, info = env.step(np.ones(K, dtype=int))
    assert terminated and info["best_test_score"] == 0.0


def test_live_backend_rejects_regret(tmp_path, tiny_task, tiny_model):
    with pytest.raises(ValueError, match="regret"):
        gym.make("LegalHPO-v0", task=tiny_task, backend="head", model=tiny_model, reward="regret")
