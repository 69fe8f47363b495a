"""Reliability: divergence, a killed and resumed tuning run, concurrent writers, damaged
stores, hostile input, memory over many trials, and determinism.

The figures worth reporting (memory growth, write throughput, what a learning rate of 1.0
does to the tiny model) are printed: run with ``-s`` to see them. Random and extreme
actions are fuzzed in ``test_fuzz.py``.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import math
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import legal_hpo_env  # noqa: E402,F401  (registers the env)
from agents import RandomSearch, config_to_action  # noqa: E402
from legal_hpo_env.backends import DIVERGED_SCORE, Fidelity, TrialResult, make_backend  # noqa: E402
from legal_hpo_env.backends import head as head_module  # noqa: E402
from legal_hpo_env.backends.recorded import RecordedBackend, write_table  # noqa: E402
from legal_hpo_env.cli import main as cli_main  # noqa: E402
from legal_hpo_env.env import ACTION_MODES  # noqa: E402
from legal_hpo_env.objective import Objective, evaluate  # noqa: E402
from legal_hpo_env.space import SPACE, HyperParamError, HyperParams  # noqa: E402
from legal_hpo_env.store import StoreError, TrialStore  # noqa: E402
from legal_hpo_env.tasks import DataError, load_task  # noqa: E402
from legal_hpo_env.tasks.specs import TaskSpec  # noqa: E402

from conftest import REPO  # noqa: E402
from test_store import key_of, make_result, sidecars  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

K = len(SPACE)
FAST = Fidelity(max_length=32)


@pytest.fixture
def task(tiny_task):
    return load_task(tiny_task)


@pytest.fixture
def env_kwargs(tiny_task, tiny_model):
    return dict(task=tiny_task, backend="head", model=tiny_model, budget=3, max_length=32, device="cpu")


def subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child Python: this checkout importable, its own feature cache,
    one torch thread (the machine is small and shared)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "LEGAL_HPO_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }


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


# -- divergence --------------------------------------------------------------------


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
    space = env.unwrapped.hp_space
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


# -- crash and resume --------------------------------------------------------------

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


# -- concurrent writers ------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from test_store import make_result
    from legal_hpo_env.store import TrialStore
    path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:  # start together, to collide on creating the schema
        time.sleep(0.005)
    store = TrialStore(path)
    for i in range(n):
        store.put(f"w{worker}-{i}", make_result(i, seed=worker * 100_000 + i, dev_score=i / n))
        if i % 25 == 0:  # read while the others write
            assert store.get(f"w{worker}-{i}").seed == worker * 100_000 + i
            assert len(store) >= i + 1
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from legal_hpo_env.store import TrialStore
    path, start, total = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    while time.time() < start:
        time.sleep(0.005)
    store, seen, reads = TrialStore(path), 0, 0
    while seen < total and time.time() < start + 240:
        seen = sum(1 for _ in store.results())  # decodes every record written so far
        reads += 1
    print(reads, seen)
    """
)


def test_concurrent_writers_lose_nothing(tmp_path):
    writers, per_writer = 4, 500
    path = tmp_path / "shared.db"  # does not exist yet: the writers race to create it
    start = time.time() + 4.0  # time for every interpreter to start
    env = subprocess_env(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(per_writer), str(start)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(start), str(writers * per_writer)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in procs + [reader]:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "locked" not in err, err
    seconds = time.time() - start
    store = TrialStore(path)
    assert len(store) == writers * per_writer
    everything = list(store.results())  # every record readable
    expected = sorted(w * 100_000 + i for w in range(writers) for i in range(per_writer))
    assert sorted(r.seed for r in everything) == expected
    for w in range(writers):
        for i in range(0, per_writer, 7):
            got = store.get(f"w{w}-{i}")
            assert got == dataclasses.replace(make_result(i, seed=w * 100_000 + i, dev_score=i / per_writer),
                                              from_store=True)
    with sqlite3.connect(path) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM trials")]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(keys) == len(set(keys)) == writers * per_writer
    print(f"\n[concurrency] {writers} processes x {per_writer} trials, with a reader decoding the whole store "
          f"meanwhile, in {seconds:.1f}s: {writers * per_writer / seconds:.0f} trials/s")


# -- damaged stores ----------------------------------------------------------------


@pytest.fixture
def full_store(tmp_path) -> tuple[Path, bytes]:
    """A closed store of 300 trials, and its bytes."""
    path = tmp_path / "full.db"
    store = TrialStore(path)
    for i in range(300):
        store.put(f"k{i}", make_result(i))
    store.close()
    assert not sidecars(path)
    return path, path.read_bytes()


def assert_refused(path: Path, *what_to_do: str, operations: Callable[[TrialStore], Any] | None = None) -> None:
    """Opening (and using) the store raises a StoreError naming the file and what to do,
    and leaves the file's bytes as they were."""
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as info:
        store = TrialStore(path)
        if operations is not None:
            operations(store)
    message = str(info.value)
    assert str(path) in message, message
    assert any(w in message for w in what_to_do), message
    if before is not None:
        assert path.read_bytes() == before


def read_everything(store: TrialStore) -> None:
    len(store)
    store.get("k150")
    list(store.results())


@pytest.mark.parametrize("cut", [1, 99, 100, 4095, 4097, "quarter", "half", "last page", "last byte"])
def test_a_store_cut_anywhere_is_refused_untouched(full_store, cut):
    path, whole = full_store
    size = {"quarter": len(whole) // 4, "half": len(whole) // 2, "last page": len(whole) - 4096,
            "last byte": len(whole) - 1}.get(cut, cut)
    path.write_bytes(whole[:size])
    assert_refused(path, "move it aside", operations=read_everything)
    assert not sidecars(path)


def test_garbage_pages_are_an_error_not_a_wrong_answer(full_store):
    path, whole = full_store
    damaged = bytearray(whole)
    middle = len(damaged) // 2
    damaged[middle : middle + 2000] = bytes(b ^ 0xFF for b in damaged[middle : middle + 2000])
    path.write_bytes(bytes(damaged))
    assert_refused(path, "move it aside", operations=read_everything)


def test_a_damaged_record_names_the_trial_and_the_others_stay_readable(full_store):
    path, _ = full_store
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE trials SET result='{\"dev_score\": 0.9' WHERE key='k7'")
        conn.execute("UPDATE trials SET result='{\"dev_score\": 0.9}' WHERE key='k8'")
    store = TrialStore(path)
    for key in ("k7", "k8"):
        with pytest.raises(StoreError) as info:
            store.get(key)
        assert str(path) in str(info.value) and key in str(info.value) and "move it aside" in str(info.value)
    with pytest.raises(StoreError, match="damaged"):
        list(store.results())
    assert store.get("k9").seed == 9 and len(store) == 300


@pytest.mark.parametrize("user_path", ["gym.make", "cli"])
def test_a_store_from_a_newer_version_is_refused_where_users_meet_it(user_path, tmp_path, env_kwargs, capsys):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trials (key TEXT PRIMARY KEY, shiny_new_column BLOB)")
        conn.execute("PRAGMA user_version=7")
    before = path.read_bytes()
    if user_path == "gym.make":
        with pytest.raises(StoreError) as info:
            gym.make("LegalHPO-v0", **env_kwargs, store=str(path))
        message = str(info.value)
    else:
        task, model = env_kwargs["task"], env_kwargs["model"]
        code = cli_main(["evaluate", "--task", task, "--model", model, "--epochs", "1", "--store", str(path)])
        assert code == 2
        message = capsys.readouterr().err
    assert str(path) in message and "newer" in message and "upgrade" in message
    assert path.read_bytes() == before and not sidecars(path)


def test_a_folder_or_foreign_database_as_store(tmp_path):
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    assert_refused(folder, "another file")
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    assert_refused(other, "another file")


def test_a_full_disk_keeps_the_stored_trials_and_says_so(tmp_path):
    """SQLite's page limit stands in for a full disk: the same SQLITE_FULL error."""
    path = tmp_path / "trials.db"
    store = TrialStore(path)
    for i in range(5):
        store.put(f"k{i}", make_result(i))
    conn = store._connection()
    conn.execute(f"PRAGMA max_page_count={conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(StoreError) as info:
        for i in range(5, 500):
            store.put(f"k{i}", make_result(i))
    message = str(info.value)
    assert str(path) in message and "disk is full" in message and "intact" in message
    store.close()
    reopened = TrialStore(path)  # space freed: everything stored before is there, and writes work
    stored = len(reopened)
    assert stored >= 5 and [r.seed for r in reopened.results()] == list(range(stored))
    reopened.put("after", make_result(999))
    assert reopened.get("after").seed == 999


# -- hostile input -----------------------------------------------------------------


@dataclass
class Hostile:
    """What a hostile-input case can touch: files in a folder, the tiny task and model,
    and a store of finished trials that no case may damage."""

    folder: Path
    task: str
    model: str
    store: Path

    def file(self, name: str, content: str | bytes, encoding: str = "utf-8") -> str:
        path = self.folder / "data" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, str):
            content = content.encode(encoding)
        path.write_bytes(content)
        return f"custom:{path}"

    def env(self, **changes: Any) -> gym.Env:
        kwargs = dict(task=self.task, backend="head", model=self.model, budget=3, max_length=32, device="cpu",
                      store=str(self.store))
        return gym.make("LegalHPO-v0", **{**kwargs, **changes})

    def load(self, name: str, content: str | bytes, encoding: str = "utf-8") -> None:
        self.env(task=self.file(name, content, encoding))

    def step(self, action_mode: str, action: Any) -> None:
        env = self.env(action_mode=action_mode)
        env.reset(seed=0)
        env.step(action)

    def trial(self, config: Any = None, seed: Any = 0) -> None:
        Objective(self.task, "head", model=self.model, fidelity=FAST, store=self.store, device="cpu")(config, seed)


def rows(n: int = 30, classes: tuple[str, ...] = ("A", "B", "C")) -> str:
    return "".join(f"clause number {i} about the service,{classes[i % len(classes)]}\n" for i in range(n))


def jec_with_one_correct_answer(h: Hostile) -> None:
    """A JEC-QA-style file whose only correct option sits in a question the (seeded,
    group-aware) split sends to dev: the label 'correct' is never seen in training."""
    lines = [json.dumps({"id": f"q{i}", "statement": f"question {i}", "answer": ["A"] if i == 0 else [],
                         "option_list": {"A": "yes", "B": "no", "C": "maybe", "D": "never"}}) for i in range(20)]
    h.file("jec.jsonl", "\n".join(lines) + "\n")
    spec = TaskSpec(name="hostile_jec", family="chinese_qa", reader="jec_qa", files=("jec.jsonl",), metric="accuracy",
                    description="hostile", licence="test", group_split=True)
    Objective(spec, "head", model=h.model, data_dir=h.folder / "data", store=h.store)


#: (id, case, expected error type, fragments the message must hold)
HOSTILE: list[tuple[str, Callable[[Hostile], Any], type[BaseException], list[str]]] = [
    # data files
    ("csv missing label column", lambda h: h.load("a.csv", "text,category\n" + rows()),
     DataError, ["missing column", "label"]),
    ("csv missing text column", lambda h: h.load("a.csv", "body,label\n" + rows()),
     DataError, ["missing column", "text"]),
    ("empty file", lambda h: h.load("a.csv", b""), DataError, ["is empty"]),
    ("blank file", lambda h: h.load("a.csv", "\n  \n\n"), DataError, ["is empty"]),
    ("header only", lambda h: h.load("a.csv", "text,label\n"), DataError, ["no rows"]),
    ("latin-1 file", lambda h: h.load("a.csv", "text,label\n" + rows().replace("service", "société"), "latin-1"),
     DataError, ["not UTF-8", "UTF-8"]),
    ("utf-16 file", lambda h: h.load("a.csv", "text,label\n" + rows(), "utf-16"), DataError, ["not UTF-8"]),
    ("binary garbage", lambda h: h.load("a.csv", np.random.default_rng(0).bytes(4096)), DataError, ["not UTF-8"]),
    ("label unseen in training", jec_with_one_correct_answer, DataError, ["'correct'", "training"]),
    ("single class", lambda h: h.load("a.csv", "text,label\n" + rows(classes=("A",))), DataError, ["single value"]),
    ("too few examples", lambda h: h.load("a.csv", "text,label\n" + rows(5, ("A", "B"))), DataError, ["too few"]),
    ("empty text cells", lambda h: h.load("a.csv", "text,label\n" + rows() + ",A\n"), DataError, ["'text'", "empty"]),
    ("ragged csv row", lambda h: h.load("a.csv", "text,label\n" + rows() + "only text\n"),
     DataError, ["'label'", "missing"]),
    ("jsonl array line", lambda h: h.load("a.jsonl", '{"text": "a", "label": "A"}\n[1, 2]\n'),
     DataError, ["line 2", "JSON object"]),
    ("jsonl broken line", lambda h: h.load("a.jsonl", '{"text": "a", "label": "A"}\n{"text": \n'),
     DataError, ["line 2", "not valid JSON"]),
    ("jsonl nested text", lambda h: h.load("a.jsonl", '{"text": {"a": 1}, "label": "A"}\n'),
     DataError, ["'text'", "dict"]),
    ("jsonl NaN label", lambda h: h.load("a.jsonl", '{"text": "a", "label": NaN}\n'), DataError, ["'label'", "float"]),
    ("unsupported file type", lambda h: h.load("a.xlsx", "text,label\n" + rows()), DataError, ["unsupported", ".xlsx"]),
    ("missing file", lambda h: h.env(task=f"custom:{h.folder / 'nope.csv'}"),
     DataError, ["nope.csv", "does not exist"]),
    ("folder as data file", lambda h: h.env(task=f"custom:{h.folder}"), DataError, ["does not exist"]),
    # configurations and seeds
    ("lr NaN", lambda h: h.trial({"learning_rate": math.nan}), HyperParamError, ["learning_rate=nan"]),
    ("lr inf", lambda h: h.trial({"learning_rate": math.inf}), HyperParamError, ["learning_rate=inf", "range"]),
    ("lr huge", lambda h: h.trial({"learning_rate": 1e300}), HyperParamError, ["learning_rate", "range"]),
    ("batch size huge", lambda h: h.trial({"batch_size": 10**12}), HyperParamError, ["batch_size", "range"]),
    ("epochs fractional", lambda h: h.trial({"epochs": 2.5}), HyperParamError, ["epochs=2.5", "whole"]),
    ("epochs as text", lambda h: h.trial({"epochs": "3"}), HyperParamError, ["epochs='3'", "str"]),
    ("dropout None", lambda h: h.trial({"dropout": None}), HyperParamError, ["dropout=None"]),
    ("class weighting number", lambda h: h.trial({"class_weighting": 1}),
     HyperParamError, ["class_weighting=1", "'balanced'"]),
    ("lr as array", lambda h: h.trial({"learning_rate": np.array([1e-3])}),
     HyperParamError, ["learning_rate", "ndarray"]),
    ("unknown hyperparameter", lambda h: h.trial({"lr": 1e-3}), HyperParamError, ["'lr'", "learning_rate"]),
    ("config not a mapping", lambda h: h.trial([("epochs", 2)]), TypeError, ["mapping"]),
    ("seed NaN", lambda h: h.trial(seed=math.nan), ValueError, ["seed=nan"]),
    ("seed huge", lambda h: h.trial(seed=2**70), ValueError, ["seed=", "2**63"]),
    ("seed negative", lambda h: h.trial(seed=-1), ValueError, ["seed=-1"]),
    # environment arguments
    ("unknown env argument", lambda h: h.env(learning_rate_schedule="cosine"), TypeError, ["learning_rate_schedule"]),
    ("unknown evaluate argument", lambda h: evaluate(h.task, {}, lr=1e-3, store=h.store), TypeError, ["'lr'"]),
    ("misspelt objective argument", lambda h: Objective(h.task, "head", modle=h.model, store=h.store),
     TypeError, ["'modle'"]),
    ("max_length NaN", lambda h: h.env(max_length=math.nan), ValueError, ["max_length=nan"]),
    ("max_length inf", lambda h: h.env(max_length=math.inf), ValueError, ["max_length=inf"]),
    ("max_length fractional", lambda h: h.env(max_length=32.5), ValueError, ["max_length=32.5"]),
    ("max_train as text", lambda h: h.env(max_train="12"), ValueError, ["max_train='12'"]),
    ("budget inf", lambda h: h.env(budget=math.inf), ValueError, ["budget=inf"]),
    ("cost penalty huge", lambda h: h.env(cost_penalty=1e308), ValueError, ["cost_penalty", "at most"]),
    ("diverged penalty -inf", lambda h: h.env(diverged_penalty=-math.inf), ValueError, ["diverged_penalty"]),
    ("trial seeds huge", lambda h: h.env(trial_seeds=10**30), ValueError, ["trial_seeds"]),
    ("task a number", lambda h: h.env(task=123), TypeError, ["task=123"]),
    ("backend None", lambda h: h.env(backend=None), TypeError, ["backend", "NoneType"]),
    ("store a folder", lambda h: h.env(store=str(h.folder)), StoreError, ["a folder", "another file"]),
    # actions
    ("direct NaN", lambda h: h.step("direct", [0.0] * (K - 1) + [math.nan]), ValueError, ["action space"]),
    ("direct inf", lambda h: h.step("direct", [math.inf] * K), ValueError, ["action space"]),
    ("direct huge", lambda h: h.step("direct", np.full(K, 1e30)), ValueError, ["action space"]),
    ("direct text", lambda h: h.step("direct", ["0.5"] * K), ValueError, ["action space"]),
    ("direct dict", lambda h: h.step("direct", {"learning_rate": 0.5}), ValueError, ["action space"]),
    ("direct None", lambda h: h.step("direct", None), ValueError, ["action space"]),
    ("direct ragged", lambda h: h.step("direct", [[0.0], [0.0, 0.0]]), ValueError, ["action space"]),
    ("direct column", lambda h: h.step("direct", np.zeros((K, 1))), ValueError, ["action space"]),
    ("direct complex", lambda h: h.step("direct", np.full(K, 0.5j)), ValueError, ["action space"]),
    ("direct huge int", lambda h: h.step("direct", [2**70] * K), ValueError, ["action space"]),
    ("delta floats", lambda h: h.step("delta", [1.0] * K), ValueError, ["action space"]),
    ("delta ragged", lambda h: h.step("delta", [[1], [1, 1]]), ValueError, ["action space"]),
    ("delta huge", lambda h: h.step("delta", [2**70] * K), ValueError, ["action space"]),
    ("single huge", lambda h: h.step("single", 2**70), ValueError, ["action space"]),
    ("single text", lambda h: h.step("single", "3"), ValueError, ["action space"]),
    ("single matrix", lambda h: h.step("single", np.array([[1]])), ValueError, ["action space"]),
    ("single None", lambda h: h.step("single", None), ValueError, ["action space"]),
]


@pytest.fixture
def hostile(tmp_path, tiny_task, tiny_model) -> Hostile:
    folder = tmp_path / "a folder"  # (a space in the path, too)
    folder.mkdir()
    h = Hostile(folder, tiny_task, tiny_model, tmp_path / "trials.db")
    store = TrialStore(h.store)
    for i in range(3):
        store.put(f"k{i}", make_result(i))
    store.close()
    return h


def snapshot(folder: Path, hostile: Hostile) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (size, mtime) but the store (checked on its own, with
    the sidecars SQLite keeps while it is open) and the hostile input files themselves."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(hostile.store.name) and hostile.folder / "data" not in p.parents
    }


def test_the_hostile_suite_is_large_enough():
    assert len(HOSTILE) >= 30 and len({i for i, *_ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("case", "error", "fragments"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_a_clear_typed_error(hostile, tmp_path, case, error, fragments):
    before = snapshot(tmp_path, hostile)
    with pytest.raises(error) as info:
        case(hostile)
    assert isinstance(info.value, (ValueError, TypeError, StoreError)), type(info.value)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    gc.collect()  # close what the failed call opened
    assert snapshot(tmp_path, hostile) == before  # no partial (or any other) file left
    with sqlite3.connect(hostile.store) as conn:  # the store is intact
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = TrialStore(hostile.store)
    assert sorted(r.seed for r in store.results()) == [0, 1, 2] and store.get("k1") == make_result(1, from_store=True)


def test_an_env_survives_its_rejected_actions(hostile):
    """A rejected action changes nothing: the episode goes on as if it was never sent."""
    env = hostile.env(action_mode="direct", budget=2)
    obs, _ = env.reset(seed=0)
    for bad in ([math.nan] * K, None, "x", [2.0] * K):
        with pytest.raises(ValueError):
            env.step(bad)
    assert env.unwrapped._trials == 0 and np.array_equal(env.unwrapped._observation(), obs)
    _, _, terminated, _, info = env.step(np.zeros(K, dtype=np.float32))
    assert info["trials"] == 1 and not terminated


# -- memory ------------------------------------------------------------------------

MEMORY = textwrap.dedent(
    """
    import gc, json, resource, sys
    import torch
    torch.set_num_threads(1)
    from legal_hpo_env.backends import Fidelity
    from legal_hpo_env.objective import Objective
    from legal_hpo_env.space import HyperParams

    task, model, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def state(count):
        row = {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if count:  # a walk over every Python object: after the first, second and last trial
            gc.collect()
            objects = gc.get_objects()
            # type(), not isinstance: that reads __class__, which lazy module proxies warn on
            row["modules"] = sum(issubclass(type(o), torch.nn.Module) for o in objects)
            row["optimizers"] = sum(issubclass(type(o), torch.optim.Optimizer) for o in objects)
        return row

    out = {"before": state(False)}
    for backend in ("finetune", "head"):
        objective = Objective(task, backend, model=model, fidelity=Fidelity(max_train=8, max_length=32), device="cpu")
        rows = []
        for seed in range(trials):
            objective(HyperParams(epochs=1, batch_size=8, learning_rate=1e-4), seed=seed)
            rows.append(state(seed in (0, 1, trials - 1)))
        out[backend] = rows
    print(json.dumps(out))
    """
)


def test_twenty_live_trials_release_their_memory(tmp_path, tiny_model, tiny_task):
    """20 fine-tuning trials of a 3.3M-parameter BERT, then 20 head trials, in one process:
    no model or optimiser outlives its trial, and peak memory after 20 trials is
    that after the first (one trial's state: weights, gradients, two AdamW moments and the
    best epoch's copy, 20 bytes a parameter, would add 63 MiB a leaked trial)."""
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert-256"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((Path(tiny_model) / name).read_bytes())
    config = BertConfig.from_pretrained(tiny_model)
    config.update({"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024})
    torch.manual_seed(0)
    model = BertModel(config)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    del model
    trials = 20
    done = subprocess.run([sys.executable, "-c", MEMORY, tiny_task, str(folder), str(trials)],
                          env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    trial_state_mib = 20 * params / 2**20
    for backend in ("finetune", "head"):
        first, last = out[backend][0], out[backend][-1]
        for kind in ("modules", "optimizers"):  # nothing of a trial survives it
            assert first[kind] == out[backend][1][kind] == last[kind], (backend, kind, first, last)
    first, last = out["finetune"][0], out["finetune"][-1]
    growth = last["peak_mib"] - first["peak_mib"]
    assert growth < trial_state_mib, (growth, trial_state_mib)
    assert out["head"][-1]["peak_mib"] - out["head"][0]["peak_mib"] < trial_state_mib
    print(f"\n[memory] {params / 1e6:.1f}M-parameter model, {trials} finetune trials in one process: peak RSS "
          f"{out['before']['peak_mib']:.0f} MiB before, {first['peak_mib']:.0f} after the first trial, "
          f"{last['peak_mib']:.0f} after the {trials}th (+{growth:.1f} MiB; one trial's state is "
          f"{trial_state_mib:.0f} MiB); {trials} head trials after them: "
          f"+{out['head'][-1]['peak_mib'] - out['head'][0]['peak_mib']:.1f} MiB")


# -- determinism -------------------------------------------------------------------

DETERMINISM = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    import gymnasium as gym
    import legal_hpo_env
    from legal_hpo_env.backends import Fidelity, make_backend
    from legal_hpo_env.space import HyperParams
    from legal_hpo_env.tasks import load_task

    task, model = sys.argv[1], sys.argv[2]
    env = gym.make("LegalHPO-v0", task=task, backend="head", model=model, budget=4, max_length=32, device="cpu",
                   action_mode="direct", start="random", trial_seeds=3)
    env.action_space.seed(5)
    obs, _ = env.reset(seed=7)
    head = [obs.tolist()]
    for _ in range(4):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        head.append([obs.tolist(), reward, info["config"], info["trial_seed"], info["dev_curve"], info["train_loss"]])
    config = HyperParams(epochs=2, learning_rate=3e-3, batch_size=4, dropout=0.2)
    backend = make_backend("finetune", model=model, device="cpu")
    r = backend.evaluate(load_task(task), config, Fidelity(max_length=32), seed=3)
    finetune = [r.dev_curve, r.train_loss, r.selected_epoch, r.dev_score, r.test_score, r.dev_accuracy, r.test_accuracy]
    print(json.dumps({"head": head, "finetune": finetune}))
    """
)


def test_head_and_finetune_are_identical_across_processes(tmp_path, tiny_task, tiny_model):
    """The same seeds in two fresh processes (other hash seeds, cold feature caches, one
    started while the other runs): bit-identical head trajectories and finetune metrics."""
    procs = [
        subprocess.Popen([sys.executable, "-c", DETERMINISM, tiny_task, tiny_model],
                         env=subprocess_env(tmp_path / str(i), PYTHONHASHSEED=str(i)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in (1, 2)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
    head = outputs[0]["head"]
    assert len({json.dumps(step[2]) for step in head[1:]}) > 1  # the trajectory does move


def recorded_table(path: Path) -> Path:
    """A small recorded table: 3 learning rates x 2 batch sizes x 2 weightings x 2 seeds;
    the highest learning rate diverges, at batch 4 already in its first epoch."""
    results = []
    for lr, batch, weighting, seed in itertools.product((1e-5, 1e-4, 1e-2), (4, 16), ("none", "balanced"), (0, 1)):
        base = 0.3 + 0.4 * (lr == 1e-4) + 0.05 * (batch == 16) + 0.02 * (weighting == "balanced") + 0.01 * seed
        curve = [round(base - 0.1, 4), round(base, 4), round(base - 0.05, 4)]
        diverged = lr == 1e-2
        if diverged:
            curve = [] if batch == 4 else curve[:1]
        config = HyperParams(learning_rate=lr, batch_size=batch, class_weighting=weighting, epochs=3)
        curves = {f"{s}_{m}": list(curve) for s in ("dev", "test") for m in ("accuracy", "macro_f1")}
        results.append(TrialResult(
            task="t", backend="head", model="m", config=config.to_dict(), fidelity=FAST.to_dict(), seed=seed,
            metric="macro_f1", dev_curve=curve, train_loss=[1.0] * len(curve), selected_epoch=1,
            dev_score=max(curve, default=0.0), test_score=0.0, dev_accuracy=0.0, dev_macro_f1=0.0, test_accuracy=0.0,
            test_macro_f1=0.0, diverged=diverged, seconds=12.0, sizes={"train": 400, "dev": 80, "test": 80},
            data_hash="h", code_version="t",
            extra={"curves": curves, "task_meta": {"family": 0.0, "train_size": 400.0, "num_labels": 3.0,
                                                   "mean_chars": 120.0}},
        ))
    return write_table(results, {"note": "reliability tests"}, path, version=1)


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_recorded_trajectories_are_identical_for_one_seed(tmp_path, action_mode):
    table = recorded_table(tmp_path / "head-v1.json.gz")

    def trajectory(seed: int) -> list:
        env = gym.make("LegalHPO-v0", task="t", backend=RecordedBackend(path=table), budget=12,
                       action_mode=action_mode, reward="regret", start="random")
        env.action_space.seed(3)
        obs, _ = env.reset(seed=seed)
        steps = [obs.tolist()]
        for _ in range(12):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            steps.append([obs.tolist(), reward, info["config"], info["trial_seed"], info.get("regret")])
        return steps

    first = trajectory(seed=4)
    assert trajectory(seed=4) == first
    assert trajectory(seed=5) != first
