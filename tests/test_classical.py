"""The classical baselines: TF-IDF + linear SVM and the majority class, on a task's own split."""

from __future__ import annotations

import pytest

from legal_hpo_env.backends import Fidelity
from legal_hpo_env.classical import C_GRID, CLASS_WEIGHTINGS, BaselineError, classical_baselines, split_of
from legal_hpo_env.tasks import load_task
from support import WORDS, write_classification_csv


def write_rows(path, rows, header="text,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return f"custom:{path}"


def separable_task(tmp_path) -> str:
    """90 examples, 3 classes; the label is a keyword among a few random filler words."""
    import random

    rng = random.Random(0)
    keywords = {"arbitration": "Arbitration", "terminate": "Termination", "service": "Other"}
    rows = []
    for i in range(90):
        word = list(keywords)[i % 3]
        words = [word, *rng.sample(WORDS[:20], 3)]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{keywords[word]}")
    return write_rows(tmp_path / "separable.csv", rows)


def test_tfidf_svm_beats_the_majority_class_on_a_separable_task(tmp_path):
    task = load_task(separable_task(tmp_path))
    baselines = classical_baselines(task)
    svm, majority = baselines["tfidf_svm"], baselines["majority"]
    assert baselines["metric"] == "macro_f1" and baselines["sizes"] == {"train": 66, "dev": 12, "test": 12}
    assert svm["dev"]["score"] == svm["dev"]["macro_f1"] == 1.0  # the label is a keyword: separable
    assert svm["test"]["score"] == 1.0 > majority["test"]["score"]
    assert svm["settings"]["C"] in C_GRID and svm["settings"]["class_weighting"] in CLASS_WEIGHTINGS
    assert len(svm["tried"]) == len(C_GRID) * len(CLASS_WEIGHTINGS)
    # the setting chosen is the first of those with the best dev score (ties: smaller C, then no weighting)
    best = max(t["dev_score"] for t in svm["tried"])
    first = next(t for t in svm["tried"] if t["dev_score"] == best)
    assert svm["settings"] == {"C": first["C"], "class_weighting": first["class_weighting"]}
    assert svm["seconds"] > 0 and majority["seconds"] >= 0


def test_the_majority_class_scores_its_share_of_the_labels(tmp_path):
    # 2 of every 3 examples are "Common": the majority, whose share on each split is known
    rows = [f"{'common words here' if i % 3 else 'rare words there'} {i},{'Common' if i % 3 else 'Rare'}"
            for i in range(60)]
    task = load_task(write_rows(tmp_path / "imbalanced.csv", rows))
    majority = classical_baselines(task)["majority"]
    assert majority["settings"]["label"] == "Common"
    for split in ("dev", "test"):
        labels = [ex.label for ex in getattr(task, split)]
        share = labels.count(task.label_names.index("Common")) / len(labels)
        assert majority[split]["accuracy"] == pytest.approx(share)
        # F1 of the majority class is 2 share / (1 + share), of the other 0; macro-F1 averages the two
        assert majority[split]["macro_f1"] == pytest.approx(share / (1 + share))
        assert majority[split]["score"] == majority[split]["macro_f1"]  # the task's headline metric


def test_text_pairs_keep_text_and_pair_apart(tmp_path):
    # the same two words in either order: a bag of the joined text cannot tell the labels apart
    rows = [f"alpha {i},beta {i},First" if i % 2 else f"beta {i},alpha {i},Second" for i in range(60)]
    task = load_task(write_rows(tmp_path / "pairs.csv", rows, header="text,text_pair,label"))
    assert all(ex.text_pair for ex in task.train)
    svm = classical_baselines(task)["tfidf_svm"]
    assert svm["dev"]["accuracy"] == svm["test"]["accuracy"] == 1.0


def test_the_split_is_the_trials_split_at_the_fidelity(tmp_path):
    task = load_task(f"custom:{write_classification_csv(tmp_path / 'big.csv', n=120)}")
    fidelity = Fidelity(max_train=30, max_eval=12)
    split = split_of(task, fidelity)
    for name, cap in (("train", 30), ("dev", 12), ("test", 12)):
        examples = getattr(task, name)
        assert list(getattr(split, name)) == [examples[i] for i in task.subset(name, cap)]
    baselines = classical_baselines(task, fidelity)
    assert baselines["sizes"] == {"train": 30, "dev": 12, "test": 12}
    assert baselines["fidelity"] == fidelity.to_dict()


def test_texts_without_a_word_are_a_clear_error(tmp_path):
    task = load_task(write_rows(tmp_path / "empty.csv", [f"{'x' if i % 2 else 'y'},{'A' if i % 2 else 'B'}"
                                                          for i in range(30)]))
    with pytest.raises(BaselineError, match="no TF-IDF features.*--no-baselines"):
        classical_baselines(task)
    with pytest.raises(TypeError, match="Fidelity"):
        classical_baselines(task, {"max_train": 10})
