"""Reliability, crash and resume: a ``legal-hpo tune`` run killed in the middle of a trial
resumes without losing or repeating a trial, and reports what an uninterrupted run does.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

pytest.importorskip("torch")

from legal_hpo_env.store import TrialStore  # noqa: E402
from support import key_of, subprocess_env  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: ``legal-hpo tune`` as a user runs it, plus two test hooks: a line on stdout whenever a
#: trial is really trained (not read from the store), and a stall in the middle of the
#: n-th training (after its first epoch) so that the test can kill the run there.
DRIVER = textwrap.dedent(
    '''
    import json, os, sys, time
    from legal_hpo_env.backends import head

    original_evaluate, original_train = head.HeadBackend.evaluate, head.train_epochs
    stall_at = int(os.environ.get("STALL_AT_TRAINING", "0"))
    started = 0

    def evaluate(self, task, config, fidelity, seed, **kwargs):
        global started
        started += 1
        print("TRAINING", json.dumps(config.to_dict(), sort_keys=True), flush=True)
        return original_evaluate(self, task, config, fidelity, seed, **kwargs)

    def train_epochs(model, config, batches, step_loss, evaluate_dev, **kwargs):
        def dev():
            score = evaluate_dev()
            if started == stall_at:
                print("MID-TRIAL", flush=True)
                time.sleep(600)
            return score
        return original_train(model, config, batches, step_loss, dev, **kwargs)

    head.HeadBackend.evaluate, head.train_epochs = evaluate, train_epochs
    from legal_hpo_env.cli import main
    sys.exit(main(sys.argv[1:]))
    '''
)


def read_lines_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s stdout up to the one equal to ``marker``."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"no {marker!r} line within {timeout}s; got {seen}") from None
        if line is None:
            raise AssertionError(f"the run ended before {marker!r}: {seen}\n{proc.stderr.read()}")
        seen.append(line)
        if line == marker:
            return seen


def trainings(lines: list[str]) -> list[str]:
    return [line.split(" ", 1)[1] for line in lines if line.startswith("TRAINING ")]


def test_killed_tuning_run_resumes_without_losing_or_repeating_trials(tmp_path, tiny_task, tiny_model):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")

    def command(name: str) -> list[str]:
        return [sys.executable, str(driver), "tune", "--agent", "random", "--backend", "head", "--task", tiny_task,
                "--model", tiny_model, "--budget", "6", "--seed", "0", "--max-length", "32", "--device", "cpu",
                "--store", str(tmp_path / f"{name}.db"), "--report", str(tmp_path / f"{name}.json")]

    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The same run, never interrupted, in its own store and cache: what the resumed run must report.
    reference = subprocess.Popen(command("reference"), env=subprocess_env(tmp_path / "ref"), **pipes)
    run = subprocess.Popen(command("run"), env=subprocess_env(tmp_path, STALL_AT_TRAINING="4"), **pipes)
    first = trainings(read_lines_until(run, "MID-TRIAL", timeout=240))
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    finished, interrupted = first[:3], first[3]
    assert len(set(first)) == 4
    store = tmp_path / "run.db"
    assert sorted(json.dumps(r.config, sort_keys=True) for r in TrialStore(store).results()) == sorted(finished)
    assert not (tmp_path / "run.json").exists()

    resumed = subprocess.run(command("run"), env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    second = trainings(resumed.stdout.splitlines())
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    everything = trainings(out.splitlines())

    assert interrupted in second  # the interrupted trial reruns
    assert not set(finished) & set(second)  # no finished trial is trained again
    assert sorted(finished + second) == sorted(everything)  # and none is lost
    results = list(TrialStore(store).results())
    assert len(results) == len(everything) == len({key_of(r) for r in results})  # each trial once
    # No silent wrong number: the resumed run reports exactly what the uninterrupted one does.
    got, want = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("run", "reference"))
    for field in ("configs", "dev_scores", "best_curve", "best_config", "best_score", "best_test_score"):
        assert got[field] == want[field], field
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # no torn cache files
