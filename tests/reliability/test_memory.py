"""Reliability, memory: twenty live trials of each backend in one process release their
models and optimisers, and peak memory does not grow by a trial's state.

The memory figures are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from support import report_figure, subprocess_env  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

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
    head_growth = out["head"][-1]["peak_mib"] - out["head"][0]["peak_mib"]
    report_figure("memory", {"parameters_millions": round(params / 1e6, 2), "trials": trials,
                             "finetune_peak_rss_growth_mib": round(growth, 1),
                             "head_peak_rss_growth_mib": round(head_growth, 1),
                             "one_trial_state_mib": round(trial_state_mib, 1)})
    print(f"\n[memory] {params / 1e6:.1f}M-parameter model, {trials} finetune trials in one process: peak RSS "
          f"{out['before']['peak_mib']:.0f} MiB before, {first['peak_mib']:.0f} after the first trial, "
          f"{last['peak_mib']:.0f} after the {trials}th (+{growth:.1f} MiB; one trial's state is "
          f"{trial_state_mib:.0f} MiB); {trials} head trials after them: "
          f"+{out['head'][-1]['peak_mib'] - out['head'][0]['peak_mib']:.1f} MiB")
