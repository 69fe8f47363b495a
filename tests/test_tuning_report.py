"""The tune report's trial records and its pick of the best configuration (the documented tie-break)."""

from __future__ import annotations

import gymnasium as gym
import pytest

from agents import RandomSearch
from legal_hpo_env.backends.recorded import RecordedBackend
from legal_hpo_env.space import HyperParams
from legal_hpo_env.tuning_report import TIE_BREAK, TrialRecorder, best_summary, pick_best, seed_stats, trial_seeds_of
from support import recorded_table


def trial(n: int, dev: float | list[float], epochs: int = 3, batch_size: int = 16, diverged: bool = False) -> dict:
    """A trial record as TrialRecorder writes it: one seed, or several (``dev`` a list)."""
    config = {"epochs": epochs, "batch_size": batch_size}
    if isinstance(dev, float):
        return {"trial": n, "config": config, "seed": 0, "dev_score": dev, "test_score": dev / 2, "diverged": diverged}
    runs = [{"seed": s, "dev_score": d, "test_score": d / 2, "diverged": d == 0.0} for s, d in enumerate(dev)]
    return {"trial": n, "config": config, **runs[0], "seed_runs": runs,
            "over_seeds": {"dev": seed_stats(dev), "test": seed_stats([d / 2 for d in dev])}}


def test_the_highest_dev_score_wins_whatever_it_costs():
    trials = [trial(1, 0.5, epochs=1), trial(2, 0.75, epochs=8, batch_size=4), trial(3, 0.625)]
    assert pick_best(trials, train_size=100) == 1


def test_ties_on_dev_go_to_the_cheaper_configuration_then_the_earlier_trial():
    # same dev score: 5 epochs x 7 batches = 35 steps, 2 x 25 = 50, 2 x 2 = 4 (the cheapest), 2 x 2 again
    trials = [trial(1, 0.5, epochs=5, batch_size=16), trial(2, 0.5, epochs=2, batch_size=4),
              trial(3, 0.5, epochs=2, batch_size=64), trial(4, 0.5, epochs=2, batch_size=64), trial(5, 0.25, epochs=1)]
    assert pick_best(trials, train_size=100) == 2
    assert best_summary(trials, 2)["tied_on_dev"] == 4
    # fewer epochs, but more steps: cheaper is counted in optimisation steps
    assert pick_best([trial(1, 0.5, epochs=1, batch_size=4), trial(2, 0.5, epochs=2, batch_size=64)], 100) == 1
    assert pick_best([trial(1, 0.5), trial(2, 0.5)], 100) == 0  # all else equal: the earlier trial


def test_over_seeds_the_mean_decides_then_the_lower_spread():
    lucky = trial(1, [0.9, 0.5])  # the best single seed, mean 0.7
    steady = trial(2, [0.75, 0.75])  # mean 0.75
    assert pick_best([lucky, steady], 100) == 1
    wide, narrow = trial(1, [0.5, 0.75], epochs=1), trial(2, [0.625, 0.625], epochs=8)  # both mean 0.625
    assert pick_best([wide, narrow], 100) == 1  # the lower std before the lower cost
    unstable = trial(3, [0.0, 1.0])  # one seed diverged (counts 0): mean 0.5
    assert pick_best([unstable, trial(4, [0.5, 0.5])], 100) == 1  # equal means: the lower std


def test_diverged_trials_are_never_picked():
    assert pick_best([trial(1, 0.0, diverged=True), trial(2, 0.125)], 100) == 1
    assert pick_best([trial(1, 0.0, diverged=True)], 100) is None
    assert pick_best([trial(1, [0.0, 0.0])], 100) is None  # every seed diverged


def test_the_summary_gives_mean_and_spread_and_the_seed_to_train_again():
    trials = [trial(1, [0.5, 0.75, 0.625])]
    best = best_summary(trials, 0)
    assert best["seeds"] == [0, 1, 2] and best["seed"] == 1  # the seed of the highest dev score
    assert best["dev"] == {"mean": 0.625, "std": pytest.approx(0.125), "min": 0.5, "max": 0.75}
    assert best["test"]["mean"] == pytest.approx(0.3125) and best["rule"] == TIE_BREAK
    assert best_summary([trial(1, 0.5)], 0)["dev"] == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}


def test_a_trials_seeds_are_its_own_then_the_smallest_others():
    assert trial_seeds_of(0, 3) == [0, 1, 2]
    assert trial_seeds_of(2, 3) == [2, 0, 1]
    assert trial_seeds_of(7, 1) == [7]


def test_the_recorder_keeps_every_seeds_test_scores(tmp_path):
    backend = RecordedBackend(path=recorded_table(tmp_path / "t.json.gz"))
    env = gym.make("LegalHPO-v0", task="t", backend=backend, budget=4, action_mode="direct")
    recorder = TrialRecorder(env, trial_seeds=2)
    run = RandomSearch().run(recorder, seed=3)
    assert len(recorder.trials) == 4
    for record, config, dev in zip(recorder.trials, run.configs, run.dev_scores):
        assert record["config"] == config and record["dev_score"] == dev  # the env's own seed first
        assert [r["seed"] for r in record["seed_runs"]] == trial_seeds_of(record["seed"], 2)
        for r in record["seed_runs"]:
            want = backend.replay("t", HyperParams.from_dict(config), r["seed"])
            assert (r["test_score"], r["test_macro_f1"], r["dev_accuracy"]) == (
                want.test_score, want.test_macro_f1, want.dev_accuracy)
        assert record["over_seeds"]["dev"]["mean"] == pytest.approx(
            sum(r["dev_score"] for r in record["seed_runs"]) / 2)
    with pytest.raises(ValueError, match="trial_seeds=0"):
        TrialRecorder(env, trial_seeds=0)


def test_a_trial_without_a_recorded_result_is_reported_as_failed(make, monkeypatch):
    env = make(budget=1)
    recorder = TrialRecorder(env)
    recorder.reset(seed=0)
    objective = env.view.objective
    monkeypatch.setattr(objective, "lookup", lambda key: None)  # as for a remote trial whose worker died
    recorder.step(env.action_space.sample())
    (record,) = recorder.trials
    assert record["diverged"] and record["failed"] and record["test_score"] == record["dev_score"] == 0.0
    assert pick_best(recorder.trials, 42) is None
