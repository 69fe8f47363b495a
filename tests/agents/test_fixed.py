"""The best fixed action sequence, and the protocol's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base import config_to_action
from agents.fixed import FixedSequence
from benchmarks.stats import average_ranks, paired_test, summarise
from legal_hpo_env.backends.base import TrialResult
from legal_hpo_env.backends.table import TableBackend
from legal_hpo_env.env import LegalHPOEnv
from legal_hpo_env.space import DEFAULT_RECIPE, SPACE

LRS = SPACE["learning_rate"].grid
BATCHES = (8, 32)
PEAKS = {"a": 4, "b": 8}  # learning-rate index of each task's optimum (batch 32 is better on both)
META = {t: {"family": 0.0, "train_size": 500.0, "num_labels": 2.0, "mean_chars": 80.0} for t in PEAKS}


def score(task: str, i: int, batch: int) -> float:
    return round(0.3 + 0.5 * math.exp(-0.5 * ((i - PEAKS[task]) / 1.5) ** 2) + 0.05 * (batch == 32), 4)


@pytest.fixture(scope="module")
def table() -> TableBackend:
    results = []
    for task in PEAKS:
        for i, lr in enumerate(LRS):
            for batch in BATCHES:
                dev = score(task, i, batch)
                config = DEFAULT_RECIPE.replace(learning_rate=lr, batch_size=batch).to_dict()
                results.append(TrialResult(
                    task=task, backend="table", model="m", config=config, fidelity={}, seed=0, metric="macro_f1",
                    dev_curve=[dev], train_loss=[0.5], selected_epoch=1, dev_score=dev, test_score=dev,
                    dev_accuracy=dev, dev_macro_f1=dev, test_accuracy=dev, test_macro_f1=dev, diverged=False,
                    seconds=1.0, sizes={"train": 500}, data_hash="", code_version="test",
                ))
    return TableBackend(results, meta=META)


def test_the_direct_portfolio_takes_each_tasks_peak_in_turn(table):
    fixed = FixedSequence.fit(table, ["a", "b"], budget=3, action_mode="direct")
    env = LegalHPOEnv(task="a", backend=table, budget=3, action_mode="direct")
    configs = fixed.run(env, seed=0).configs
    # two peaks, two tasks: the first two trials cover both (at the better batch size), then
    # nothing is left to gain and the safest configuration (lowest mean regret) comes
    assert {c["learning_rate"] for c in configs[:2]} == {LRS[4], LRS[8]}
    assert all(c["batch_size"] == 32 for c in configs)
    assert fixed.actions[0].tolist() == config_to_action(DEFAULT_RECIPE.replace(**configs[0])).tolist()


def test_the_delta_sequence_walks_from_the_recipe_towards_the_peaks(table):
    fixed = FixedSequence.fit(table, ["a"], budget=6, action_mode="delta")
    env = LegalHPOEnv(task="a", backend=table, budget=6, action_mode="delta")
    configs = fixed.run(env, seed=0).configs
    start = LRS.index(DEFAULT_RECIPE.learning_rate)  # 3e-5, index 2
    path = [LRS.index(c["learning_rate"]) for c in configs]
    assert path[:2] == [start + 1, start + 2] and path[1] == PEAKS["a"]  # one step at a time, then stays near
    assert all(c["batch_size"] == 32 for c in configs)
    assert all(a.dtype.kind == "i" and set(a.tolist()) <= {0, 1, 2} for a in fixed.actions)


def test_a_fixed_sequence_refuses_the_wrong_env_and_budget(table):
    fixed = FixedSequence.fit(table, ["a"], budget=2, action_mode="direct")
    with pytest.raises(ValueError, match="action_mode"):
        fixed.run(LegalHPOEnv(task="a", backend=table, budget=2, action_mode="delta"), seed=0)
    with pytest.raises(ValueError, match="longer than the sequence"):
        fixed.run(LegalHPOEnv(task="a", backend=table, budget=5, action_mode="direct"), seed=0)
    with pytest.raises(ValueError, match="action_mode"):
        FixedSequence.fit(table, ["a"], budget=2, action_mode="single")


def test_ranks_share_ties_and_the_paired_test_counts_wins():
    finals = {(t, s): {"x": 0.1 * s, "y": 0.1 * s + 0.05, "z": 0.1 * s} for t in "ab" for s in range(6)}
    ranks = average_ranks(finals, ["x", "y", "z"])
    assert ranks == {"x": 1.5, "y": 3.0, "z": 1.5}
    test = paired_test(finals, "x", "y")
    assert (test["wins"], test["losses"], test["ties"]) == (12, 0, 0)
    assert test["p_value"] < 0.01 and test["mean_difference"] == pytest.approx(-0.05)
    assert paired_test(finals, "x", "z")["p_value"] is None  # every pair ties


def test_summarise_gives_checkpoints_and_a_band():
    curves = np.array([[1.0] * 20, [0.0] * 20])
    out = summarise(curves)
    assert out["at_5"] == out["at_20"] == 0.5
    assert out["ci95_at_10"] == pytest.approx(1.96 * math.sqrt(0.5) / math.sqrt(2))
