"""Print the README's benchmark tables (Markdown) from the JSON files in benchmarks/results/.

Every figure shown thus comes from a results file.

    python -m benchmarks.report > /tmp/tables.md
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import RESULTS


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _env_line(data: dict[str, Any]) -> str:
    env = data["environment"]
    versions = env["versions"]
    return (f"*{env['cpus']} CPUs ({env['processor']}), torch {versions.get('torch')}, transformers "
            f"{versions.get('transformers')}, {env['date']}; `{data['command']}`*")


def protocol(table: str) -> list[str]:
    """The headline: every method over every held-out task (leave one family out), dev and test regret."""
    data = _load(f"protocol-{table}")
    if data is None or "summary" not in data:
        return []
    setup, summary = data["setup"], data["summary"]
    folds = setup["folds"]
    lines = [
        f"**Evaluation protocol, recorded `{table}` table, leave one family out** ({len(data['tasks'])} tasks in "
        f"{len(folds)} families; learned methods trained on the other families; {setup['seeds']} seeds, budget "
        f"{setup['budget']}): normalised regret (best − found) / (best − worst) of the incumbent, mean over held-out "
        "tasks and seeds at 5 / 10 / 20 trials (lower is better; ± the 95% interval at 20), on dev (what the search "
        "sees) and on test (what its pick is worth); mean rank at the budget; two-sided Wilcoxon signed-rank test "
        "against TPE over (task, seed), with wins / losses"
        + ("; compute: the recorded training seconds of an episode's trials (ASHA stops trials early)."
           if "cost" in data else "."),
        "",
        "| method | dev regret @5 / 10 / 20 | test regret @5 / 10 / 20 | mean rank (dev) | vs TPE (dev): p, W / L |"
        + (" compute (s) |" if "cost" in data else ""),
        "|---|---|---|---|---|" + ("---|" if "cost" in data else ""),
    ]
    cost = data.get("cost", {})
    for name, dev in summary["dev"].items():
        test = summary["test"][name]
        cells = []
        for row in (dev["regret"], test["regret"]):
            at = _checkpoints(row)
            cells.append(f"{at} ± {row['ci95_at_20']:.3f}" if "ci95_at_20" in row else at)
        rank = "—" if dev["mean_rank"] is None else f"{dev['mean_rank']:.2f}"
        versus = "—" if dev["vs_tpe"] is None else _versus(dev["vs_tpe"])
        compute = f" {cost[name]:.0f} |" if name in cost else ""
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {rank} | {versus} |{compute}")
    lines += ["", _env_line(data)]
    learned = {name: row for name, row in summary["dev"].items() if "vs_blanked" in row}
    if learned:
        lines += ["", f"**Do the learned tuners use what they observe?** (the same `{table}` runs, dev regret at the "
                  "budget): each against itself with its feedback blanked and against the best fixed action sequence "
                  "of its mode and start (Wilcoxon over (task, seed); W / L: the tuner's wins / losses).", "",
                  "| tuner | regret | blanked | vs blanked: p, W / L | fixed sequence | vs fixed: p, W / L |",
                  "|---|---|---|---|---|---|"]
        final = {name: row["regret"]["at_20"] for name, row in summary["dev"].items() if "at_20" in row["regret"]}
        for name, row in learned.items():
            blanked, fixed = row["vs_blanked"]["reference"], row["vs_fixed"]["reference"]
            lines.append(f"| {name} | {final[name]:.3f} | {final[blanked]:.3f} | {_versus(row['vs_blanked'])} | "
                         f"{final[fixed]:.3f} | {_versus(row['vs_fixed'])} |")
    return lines


def fidelities() -> list[str]:
    """The head landscape against the fine-tuning one, per task (benchmarks/fidelities.py)."""
    data = _load("fidelities")
    if data is None:
        return []
    partial = "" if data["complete"] else f" (from the recording in progress: {data['finetune']})"
    lines = [f"**Does the cheap head rank configurations as fine-tuning does?**{partial} The head recorded again on "
             "the finetune table's grid, data subsets and seeds; Spearman's rank correlation of their mean dev scores "
             "over the shared grid points, each one's best learning rate, and the normalised fine-tuning regret of "
             "the head's best configuration (what trusting the proxy loses):", "",
             "| task | points | Spearman | best lr: finetune | head (same grid) | head table "
             "| regret of trusting the head |",
             "|---|---|---|---|---|---|---|"]
    for task, row in data["tasks"].items():
        table = row["head_table_optimum"]
        lr = "—" if table is None else f"{table['config']['learning_rate']:g}"
        lines.append(f"| {task} | {row['shared_points']} | {row['spearman']:+.2f} | "
                     f"{row['finetune_optimum']['config']['learning_rate']:g} | "
                     f"{row['head_optimum_on_finetune_grid']['config']['learning_rate']:g} | {lr} | "
                     f"{row['regret_of_trusting_the_head']:.2f} |")
    return lines + ["", _env_line(data)]


def live_transfer() -> list[str]:
    """The shipped tuners on a task in no table, live (benchmarks/live_transfer.py)."""
    data = _load("live-transfer")
    if data is None:
        return []
    setup, task = data["setup"], data["task"]
    lines = [f"**Shipped tuners on a task in no table, live** ({task['name']}: {len(task['labels'])} labels, "
             f"{task['examples']} examples; `head` backend, budget {setup['budget']}, {setup['seeds']} seeds): "
             "regret normalised by the best and worst dev score any method found, the test score of the pick, and "
             "the Wilcoxon test against TPE over seeds.", "",
             "| method | dev regret @5 / 10 / 20 | best dev | test of the pick (± std) | vs TPE: p, W / L |",
             "|---|---|---|---|---|"]
    for name, row in data["methods"].items():
        regret = row["regret"]
        at = _checkpoints(regret)
        versus = "—" if row["vs_tpe"] is None else _versus(row["vs_tpe"])
        lines.append(f"| {name} | {at} | {row['best_dev']:.3f} | {row['test_of_pick']:.3f} ± "
                     f"{row['test_of_pick_std']:.3f} | {versus} |")
    return lines + ["", _env_line(data)]


def _checkpoints(regret: dict[str, Any]) -> str:
    """A regret summary's means at 5 / 10 / 20 trials (those the budget reached)."""
    return " / ".join(f"{regret[f'at_{k}']:.3f}" for k in (5, 10, 20) if f"at_{k}" in regret)


def _versus(test: dict[str, Any]) -> str:
    p = "all tied" if test["p_value"] is None else f"{test['p_value']:.2g}"
    return f"{p}, {test['wins']} / {test['losses']}"


def optimum_positions(table: str) -> list[str]:
    """Where each task's best learning rate lies on the recorded grid (from the protocol's file)."""
    data = _load(f"protocol-{table}")
    if data is None or "optimum_learning_rate" not in data:
        return []
    where = data["optimum_learning_rate"]
    parts = [f"{pos}: {len(tasks)}" + (f" ({', '.join(tasks)})" if tasks and pos != "interior" else "")
             for pos, tasks in where.items()]
    lines = [f"**Where the optima lie** (best mean dev configuration of each task of the `{table}` table, its "
             "learning rate on the recorded grid): " + "; ".join(parts) + "."]
    inside = {t: row["optimum"]["best_inside"] for t, row in data["tasks"].items() if "best_inside" in row["optimum"]}
    if inside:
        lines += ["", "Of each edge optimum, how much better it is than the best configuration with a learning rate "
                  "inside the grid, against the standard error of its mean over seeds:", "",
                  "| task | best (edge) | best inside (its rate) | gap | standard error |", "|---|---|---|---|---|"]
        for task, row in sorted(inside.items()):
            best = data["tasks"][task]["optimum"]
            lines.append(f"| {task} | {best['dev']:.3f} (lr {best['config']['learning_rate']:g}) | {row['dev']:.3f} "
                         f"(lr {row['config']['learning_rate']:g}) | {row['gap']:.3f} | {row['standard_error']:.3f} |")
    return lines


def throughput() -> list[str]:
    data = _load("throughput")
    if data is None:
        return []
    med, setup = data["median_examples_per_second"], data["setup"]
    return [
        f"**Training throughput** (`finetune` loop vs Hugging Face `Trainer` with length-grouped sampling; "
        f"{setup['examples']} `unfair_tos` examples, max length {setup['max_length']}, batch "
        f"{setup['config']['batch_size']}, {setup['repeats']} alternating repeats, medians): "
        f"{med['legal_hpo_finetune']:.1f} vs {med['hf_trainer_group_by_length']:.1f} examples/s, "
        f"**{data['speedup_vs_trainer']:.2f}x** Trainer. Peak RSS of one whole trial in a fresh process: "
        f"{data['peak_rss_mib_one_trial']:.0f} MiB.", "", _env_line(data)]


def quality() -> list[str]:
    data = _load("quality")
    if data is None:
        return []
    setup = data["setup"]
    lines = [f"**Quality on the test split** (training capped at {setup['max_train']} examples, "
             f"max length {setup['max_length']}, {setup['epochs']} epochs, seed {setup['seed']}); headline metric:",
             "", "| task | metric | majority class | TF-IDF + linear SVM | MiniLM fine-tuned, LexGLUE recipe |",
             "|---|---|---|---|---|"]
    for task, row in data["tasks"].items():
        m, test = row["metric"], row["test"]
        lines.append(f"| {task} | {m} | {test['majority_class'][m]:.3f} | {test['tfidf_linear_svm'][m]:.3f} | "
                     f"{test['finetune_lexglue_recipe'][m]:.3f} |")
    return lines + ["", _env_line(data)]


def practitioner() -> list[str]:
    """What a practitioner gets per task: the saved tuned model's test score beside the two baselines."""
    data = _load("practitioner")
    if data is None or not data.get("tasks"):
        return []
    lines = ["**What a practitioner gets** (per task: live tuning within a compute budget, TPE with Hyperband "
             "pruning over epochs, the best completed trial trained again and saved; `python -m "
             "benchmarks.practitioner`): test headline metric of the saved model beside TF-IDF + linear SVM (`C` and "
             "class weighting chosen on dev) and the majority class, on the same examples; budget used by the search "
             "(the baselines and the saved model's retraining are extra).",
             "", "| task | metric | majority | TF-IDF + SVM | tuned model (backend) | budget used |",
             "|---|---|---|---|---|---|"]
    for task, row in data["tasks"].items():
        baselines, saved = row["baselines"], row["saved_model"]
        majority, svm = (("—", "—") if "skipped" in baselines else
                         [f"{baselines[b]['test']['score']:.3f}" for b in ("majority", "tfidf_svm")])
        tuned = "no model" if saved is None else f"{saved['test']['score']:.3f}"
        used = (f"{row['time_used'] / 60:.1f} / {row['time_budget'] / 60:g} min, {row['trials_completed']} trials "
                f"(+{row['trials_pruned']} pruned)")
        lines.append(f"| {task} | {row['metric']} | {majority} | {svm} | {tuned} ({row['backend']}) | {used} |")
    return lines + ["", _env_line(data)]


def head_speed() -> list[str]:
    data = _load("head_speed")
    if data is None:
        return []
    lines = ["**`head` backend cost** (features cached):", "", "| task | feature pass (s, once) | median s / trial |"
             " dev best / median / worst over random configs |", "|---|---|---|---|"]
    for task, row in data["tasks"].items():
        b, m, w = row["dev_score_best_median_worst"]
        feature = "cached" if row["feature_pass_cached"] else f"{row['feature_pass_seconds']:.0f}"
        lines.append(f"| {task} | {feature} | {row['trial_seconds_median']:.2f} | "
                     f"{b:.3f} / {m:.3f} / {w:.3f} |")
    return lines + ["", _env_line(data)]


def env_speed() -> list[str]:
    data = _load("env_speed")
    if data is None:
        return []
    med = data["median_steps_per_second"]
    return [f"**Env speed** (`gym.make`, random actions): `LegalHPO-v0` (recorded) {med['LegalHPO-v0']:,.0f} steps/s, "
            f"`CartPole-v1` {med['CartPole-v1']:,.0f} steps/s: **{data['ratio_to_cartpole']:.2f}x** CartPole's rate; "
            f"first `gym.make` + `reset` {data['first_make_and_reset_seconds']:.2f} s.", "", _env_line(data)]


def recording(fidelity: str, grid: str | None = None) -> list[str]:
    """The landscape of a packaged table, by the env's own definition, with the recording's seed noise.

    The env's definition takes every configuration an agent can reach, shorter epochs read from
    the curves.
    """
    from legal_hpo_env.backends.recorded import RecordedBackend, available_tables

    data = _load(f"record-{grid or fidelity}")  # the recording of the newest packaged table
    if data is None or fidelity not in available_tables():
        return []
    backend = RecordedBackend(fidelity)
    meta = backend.metadata
    lines = [f"**Recorded `{fidelity}` landscape**, version {meta['version']} (mean dev score over seeds per "
             "configuration an agent can reach; the regret of `info` and the protocol is normalised by it). "
             f"Its {sum(len(backend.configurations(t)) for t in backend.tasks) // len(backend.tasks)} grid points "
             f"per task cost {meta['total_seconds'] / 3600:.1f} hours of training in all (sum of the runs' seconds):",
             "",
             "| task | best | median | worst | seed noise (std) | configurations |", "|---|---|---|---|---|---|"]
    for task in backend.tasks:
        land = backend.landscape(task)
        noise = data["landscape"].get(task, {}).get("seed_noise_std", float("nan"))
        lines.append(f"| {task} | {land.best:.3f} | {land.median:.3f} | {land.worst:.3f} | {noise:.3f} | "
                     f"{land.configurations} |")
    return lines + ["", _env_line(data)]


def recording_progress(fidelity: str) -> list[str]:
    """How far a table's recording is, from its summary (``record --summary``)."""
    data = _load(f"record-{fidelity}")
    if data is None or data.get("complete", True) or "runs_planned" not in data:
        return []
    fid = data["fidelity"]
    cost = ", ".join(f"{t} {s:.0f} s" for t, s in data.get("seconds_per_run", {}).items())
    train = "all" if fid["max_train"] is None else fid["max_train"]
    evaluation = "whole dev and test" if fid.get("max_eval") is None else f"dev and test capped at {fid['max_eval']}"
    return [f"**Recording the `{fidelity}` table**: {data['runs']} / {data['runs_planned']} runs done "
            f"({len(data['tasks'])} tasks x {data['runs_planned'] // len(data['tasks']) // len(data['seeds'])} "
            f"configurations x {len(data['seeds'])} seeds; {train} training examples, max length "
            f"{fid['max_length']}, {evaluation}, {data['fixed']['epochs']} epochs). Mean seconds per run so far "
            f"(on the 2 cores shared with the other recording and other work): {cost}.",
            "", _env_line(data)]


def ray_scaling() -> list[str]:
    data = _load("ray_scaling")
    if data is None:
        return []
    rows = data["settings"]
    parts = [f"{name}: {row['trials_per_minute']:.0f}" for name, row in rows.items()]
    return [f"**Ray scaling** (`head` trials on `{data['setup']['task']}`, "
            f"{data['setup']['trials_per_setting']} random "
            f"configurations, one CPU per trial), trials per minute: " + ", ".join(parts) + ".", "", _env_line(data)]


def main() -> None:
    for section in (protocol("head"), optimum_positions("head"), protocol("finetune"), fidelities(), live_transfer(),
                    recording("head", "head-suite"),
                    recording("finetune"),
                    recording_progress("finetune"), recording_progress("head-suite"), quality(), practitioner(),
                    throughput(), head_speed(), env_speed(), ray_scaling()):
        if section:
            print("\n".join(section), end="\n\n")


if __name__ == "__main__":
    main()
