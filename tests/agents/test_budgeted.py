"""The budgeted search: durations, Hyperband pruning over epochs, the time budget, the store and the pick."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna")

from agents.budgeted import DURATION_FORMS, BudgetedTPE, parse_duration  # noqa: E402
from legal_hpo_env.objective import Objective  # noqa: E402
from legal_hpo_env.tuning_report import pick_best  # noqa: E402
from support import FAST  # noqa: E402


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90.0), ("90s", 90.0), ("45m", 2700.0), ("1.5h", 5400.0), ("0.5", 0.5), (".5h", 1800.0),
     (" 2M ", 120.0), ("10 s", 10.0)],
)
def test_durations_in_every_accepted_form(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10d", "1h30m", "-5", "0", "0m", "inf", "nan", "5 minutes", "1e3", "h"])
def test_other_durations_are_refused_naming_the_accepted_forms(text):
    with pytest.raises(ValueError, match="time budget") as error:
        parse_duration(text)
    assert DURATION_FORMS in str(error.value)


def test_bad_settings_are_refused():
    for kwargs in ({"time_budget": 0}, {"time_budget": float("inf")}, {"time_budget": "soon"},
                   {"time_budget": 10, "max_trials": 0}, {"time_budget": 10, "pruner": "median"},
                   {"time_budget": 10, "reduction_factor": 1}, {"time_budget": 10, "trial_seeds": 0}):
        with pytest.raises(ValueError):
            BudgetedTPE(**kwargs)


@pytest.fixture(scope="module")
def recorded():
    return Objective("unfair_tos", "recorded")


@pytest.fixture(scope="module")
def run(recorded):
    """A minute of the recorded head table's training: its seconds are the simulated cost."""
    return BudgetedTPE("60s").search(recorded, seed=0)


def test_hyperband_prunes_trials_between_epochs(run, recorded):
    pruned = [t for t in run.trials if t["pruned"]]
    assert pruned and run.completed, "the pruner stopped no trial, or every one"
    for t in pruned:
        assert 1 <= t["pruned_at_epoch"] < t["config"]["epochs"]
        assert len(t["dev_curve"]) == t["pruned_at_epoch"] and t["dev_score"] == max(t["dev_curve"])
        assert t["test_score"] is None  # no candidate: its test score is not read
    for t in run.completed:
        assert t["pruned_at_epoch"] is None
        assert len(t["dev_curve"]) == t["config"]["epochs"] or t["diverged"]
    epochs = recorded.replay_backend.space("unfair_tos")["epochs"].grid  # the table's epochs grid
    assert run.pruner == {"name": "hyperband", "resource": "epochs", "min_resource": min(epochs),
                          "max_resource": max(epochs), "reduction_factor": 3}


def test_the_search_stops_within_the_budget(run):
    assert run.clock == "recorded" and run.stop_reason == "time budget"
    costs = [t["budget_seconds"] for t in run.trials]
    assert sum(costs) == pytest.approx(run.time_used)
    longest = max(costs)
    assert run.time_used <= run.time_budget + longest  # never more than one trial over
    trained = [t["budget_seconds"] for t in run.trials if "repeat_of" not in t]
    assert run.time_budget - run.time_used < sum(trained) / len(trained)  # no further trial was expected to fit
    assert len(run.trials) > 20  # open-ended: far more than a pruned-out handful


def test_a_pruned_trial_costs_the_epochs_it_reached(run, recorded):
    from legal_hpo_env.space import HyperParams

    t = next(t for t in run.trials if t["pruned"] and "repeat_of" not in t)
    whole = recorded(HyperParams.from_dict(t["config"]), t["seed"])
    assert t["budget_seconds"] == pytest.approx(whole.seconds * t["pruned_at_epoch"] / len(whole.dev_curve))


def test_the_best_is_picked_among_completed_trials_by_the_reports_rule(run):
    best = run.best()
    assert best is not None and not run.trials[best["trial"] - 1]["pruned"]
    completed = run.completed
    index = pick_best(completed, run.results[0][0].sizes["train"])
    assert completed[index]["trial"] == best["trial"]
    tuning = run.tuning_run()
    assert tuning.best_score == best["dev"]["mean"] and len(tuning.configs) == len(run.trials)
    # a pruned trial is never the pick, even with the highest dev score of all
    lucky = {**run.trials[0], "pruned": True, "pruned_at_epoch": 1, "dev_score": 1.0}
    assert pick_best([lucky, *completed], 100) != 0


def test_a_seed_fixes_the_search_and_max_trials_caps_it(recorded, run):
    again = BudgetedTPE("60s").search(recorded, seed=0)
    assert [(t["config"], t["seed"], t["pruned_at_epoch"]) for t in again.trials] == \
        [(t["config"], t["seed"], t["pruned_at_epoch"]) for t in run.trials]
    capped = BudgetedTPE("1h", max_trials=7).search(recorded, seed=0)
    assert len(capped.trials) == 7 and capped.stop_reason == "max trials" and capped.max_trials == 7


def test_successive_halving_and_several_seeds_per_trial(recorded):
    run = BudgetedTPE(30, pruner="successive_halving", trial_seeds=2).search(recorded, seed=1)
    assert run.pruner["name"] == "successive_halving" and any(t["pruned"] for t in run.trials)
    for t in run.completed:
        assert len(t["seed_runs"]) == 2 and set(t["over_seeds"]) == {"dev", "test"}
    seeds = recorded.replay_backend.num_seeds()
    with pytest.raises(ValueError, match=f"{seeds} seeds"):
        BudgetedTPE(30, trial_seeds=seeds + 1).search(recorded)


@pytest.mark.usefixtures("torch_one_thread")
def test_live_trials_are_pruned_in_training_and_only_whole_runs_are_stored(tiny_task, tiny_model, tmp_path):
    pytest.importorskip("torch")
    from legal_hpo_env.space import SPACE, HyperParams
    from legal_hpo_env.store import TrialStore

    store = tmp_path / "trials.sqlite"
    searcher = BudgetedTPE("5m", max_trials=10, n_startup_trials=4)
    objective = Objective(tiny_task, "head", model=tiny_model, fidelity=FAST, store=store, device="cpu")
    # learning rates at which a head learns the tiny task, and ones at which it does not move
    space = SPACE.restricted([HyperParams(learning_rate=lr, batch_size=b, epochs=e)
                              for lr in (1e-5, 1e-4, 1e-2, 3e-2) for b in (4, 16) for e in (1, 3, 5)])
    run = searcher.search(objective, seed=0, space=space)
    assert run.clock == "wall" and len(run.trials) == 10
    pruned = [t for t in run.trials if t["pruned"]]
    assert pruned, [t["dev_curve"] for t in run.trials]
    for t, results in zip(run.trials, run.results):
        assert len(results[0].dev_curve) == len(t["dev_curve"])  # a pruned trial stopped training there
        if t["pruned"]:
            assert results[0].extra["stopped_after_epoch"] == t["pruned_at_epoch"]
    first_time = {(str(t["config"]), t["seed"]) for t in run.trials if not t["pruned"]}
    stored = TrialStore(store)
    assert len(stored) == len(first_time)  # every completed trial, no pruned one
    stored.close()
    # again, from the store: the same decisions, the completed trials not trained again
    again = searcher.search(Objective(tiny_task, "head", model=tiny_model, fidelity=FAST, store=store,
                                      device="cpu"), seed=0, space=space)
    assert [(t["config"], t["pruned_at_epoch"]) for t in again.trials] == \
        [(t["config"], t["pruned_at_epoch"]) for t in run.trials]
    assert all(t["from_store"] for t in again.trials if not t["pruned"] and "repeat_of" not in t)
