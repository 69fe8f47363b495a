"""Task readers, splits and bad input, on small files in the real formats."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from legal_hpo_env.tasks import (
    DATA_ENV_VAR,
    FAMILIES,
    TASK_SETS,
    TASKS,
    DataError,
    TaskData,
    UnknownTaskError,
    custom_task,
    expand_tasks,
    get_spec,
    load_task,
)
from legal_hpo_env.tasks.loading import _load_cached
from legal_hpo_env.tasks.readers import READERS

LEAK = "LEAKMARKER"


@pytest.fixture(autouse=True)
def _fresh_loader_cache():
    """load_task caches per (spec, data_dir); tests that reload must really reload."""
    _load_cached.cache_clear()
    yield
    _load_cached.cache_clear()


def reload(task, data_dir=None) -> TaskData:
    _load_cached.cache_clear()
    return load_task(task, data_dir)


def all_examples(data: TaskData):
    return [*data.train, *data.dev, *data.test]


def write_custom(path: Path, labels: dict[str, int]) -> Path:
    """A CSV with ``labels[name]`` rows of each label, texts numbered for identification."""
    rows = [{"text": f"clause {name} number {i}", "label": name} for name, n in labels.items() for i in range(n)]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


# -- LegalBench TSV -----------------------------------------------------------------


def test_legalbench_tsv_with_quoted_multiline_field(tmp_path):
    path = tmp_path / "legalbench" / "overruling.tsv"
    path.parent.mkdir()
    tricky = 'we therefore overrule "smith v. jones"\n\tto the extent it held otherwise.'
    rows = [("Yes", tricky)] + [("Yes", f"we overrule case {i}.") for i in range(5)]
    rows += [("No", f"the court affirmed judgment {i}.") for i in range(6)]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["label", "text"])
        writer.writerows(rows)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") > len(rows) + 1  # the multi-line field spans lines, as in the real file
    data = load_task("overruling", data_dir=tmp_path)
    assert data.label_names == ("No", "Yes")
    examples = all_examples(data)
    assert len(examples) == 12
    by_text = {ex.text: ex for ex in examples}
    assert by_text[tricky].label == 1  # quotes, newline and tab kept inside the one field
    assert Counter(ex.label for ex in examples) == {0: 6, 1: 6}
    assert all(ex.text_pair is None for ex in examples)


# -- SCOTUS (Oyez) ------------------------------------------------------------------

SCOTUS_HEADER = [
    "", "ID", "name", "href", "docket", "term", "first_party", "second_party", "facts", "facts_len",
    "majority_vote", "minority_vote", "first_party_winner", "decision_type", "disposition", "issue_area",
]


def write_scotus(path: Path, n_true: int = 5, n_false: int = 4, blank: int = 1) -> Path:
    rows = []
    winners = ["TRUE"] * n_true + ["FALSE"] * n_false + [""] * blank
    for i, winner in enumerate(winners):
        rows.append(
            {
                "": str(i),
                "ID": str(1000 + i),
                "name": f"Party{i} v. Other{i}",
                "href": f"https://api.oyez.org/cases/{i}",
                "docket": f"70-{i}",
                "term": "1971",
                "first_party": f"Party{i}",
                "second_party": f"Other{i}",
                "facts": f"<p>In case {i}, Party{i} &amp; friends sued.</p>\n<p>The lower  court <b>ruled</b>.</p>",
                "facts_len": "50",
                "majority_vote": f"{LEAK}-majority-{i}",
                "minority_vote": f"{LEAK}-minority-{i}",
                "first_party_winner": winner,
                "decision_type": f"{LEAK} majority opinion",
                "disposition": f"{LEAK} reversed/remanded",
                "issue_area": "Civil Rights",
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SCOTUS_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_scotus_strips_html_drops_blank_winners_and_never_leaks_outcome(tmp_path):
    write_scotus(tmp_path / "scotus_oyez" / "justice.csv")
    data = load_task("scotus", data_dir=tmp_path)
    examples = all_examples(data)
    assert len(examples) == 9  # 10 rows, one with a blank winner
    assert data.label_names == ("second party wins", "first party wins")
    assert Counter(ex.label for ex in examples) == {1: 5, 0: 4}
    for ex in examples:
        assert LEAK not in ex.text and LEAK not in (ex.text_pair or "")
        assert "<" not in ex.text and "&amp;" not in ex.text
    by_group = {ex.group: ex for ex in examples}
    assert by_group["70-0"].text == "Party0 v. Other0. In case 0, Party0 & friends sued. The lower court ruled ."
    assert by_group["70-0"].label == 1 and by_group["70-5"].label == 0
    assert "70-9" not in by_group  # the blank-winner row


def test_scotus_missing_column_is_named(tmp_path):
    path = tmp_path / "justice.csv"
    path.write_text("first_party,second_party,facts\nA,B,<p>x</p>\n", encoding="utf-8")
    spec = dataclasses.replace(TASKS["scotus"], files=("justice.csv",))
    with pytest.raises(DataError, match="first_party_winner") as info:
        load_task(spec, data_dir=tmp_path)
    assert str(path) in str(info.value)


# -- ContractNLI --------------------------------------------------------------------

HYPOTHESES = {
    "nda-1": "Receiving Party shall not reverse engineer any objects which embody Confidential Information.",
    "nda-2": "Receiving Party shall destroy or return Confidential Information upon termination.",
    "nda-3": "Receiving Party may share Confidential Information with its employees.",
    "nda-4": "Agreement shall not grant Receiving Party any right to Confidential Information.",
    "nda-5": "Receiving Party may independently develop similar information.",
}
UNITS = {
    "doc-a": [
        "1. The recipient shall not reverse engineer any objects provided.",  # matches nda-1
        "2. Bananas are yellow and grow in warm tropical places.",  # matches nothing
        "3. The recipient shall destroy or return all materials upon termination.",  # nda-2
        "4. The recipient may share the materials with its employees.",  # nda-3
        "5. Nothing herein shall grant any right or licence.",  # nda-4
        "6. Either side may independently develop similar products.",  # nda-5
    ],
    "doc-b": [
        "A. Penguins live near the South Pole and eat fish.",
        "B. No party shall reverse engineer the objects.",  # nda-1
        "C. Materials must be destroyed; the recipient shall return them upon termination.",  # nda-2
        "D. Disclosure to employees is permitted to share.",  # nda-3
        "E. This grant confers no right.",  # nda-4
        "F. Independently developed information is excluded.",  # nda-5
    ],
}
# (choice, gold evidence units) per document and hypothesis.
ANNOTATIONS = {
    "doc-a": {
        "nda-1": ("Entailment", [1]),  # gold evidence is the dissimilar banana sentence
        "nda-2": ("Entailment", [2]),
        "nda-3": ("Contradiction", [3]),
        "nda-4": ("NotMentioned", []),
        "nda-5": ("Contradiction", [5]),
    },
    "doc-b": {
        "nda-1": ("Entailment", [1]),
        "nda-2": ("NotMentioned", []),
        "nda-3": ("Contradiction", [0]),  # gold evidence is the dissimilar penguin sentence
        "nda-4": ("NotMentioned", []),
        "nda-5": ("Entailment", [5]),
    },
}


def contract_nli_json(annotations=ANNOTATIONS) -> dict:
    documents = []
    for doc_id, units in UNITS.items():
        text, spans = "", []
        for unit in units:
            if text:
                text += " "
            spans.append([len(text), len(text) + len(unit)])
            text += unit
        documents.append(
            {
                "id": doc_id,
                "file_name": f"{doc_id}.pdf",
                "text": text,
                "spans": spans,
                "annotation_sets": [
                    {"annotations": {k: {"choice": c, "spans": s} for k, (c, s) in annotations[doc_id].items()}}
                ],
                "document_type": "search-pdf",
                "url": "https://example.org",
            }
        )
    labels = {k: {"short_description": k, "hypothesis": h} for k, h in HYPOTHESES.items()}
    return {"documents": documents, "labels": labels}


def cnli_spec(name="cnli.json"):
    return dataclasses.replace(TASKS["contract_nli"], files=(name,), options=(("passages", 1),))


def read_raw(spec, data_dir: Path):
    """The reader's output, before splitting (two documents are too few to split)."""
    return READERS[spec.reader](spec, [data_dir / f for f in spec.files])


def test_contract_nli_retrieves_passages_without_gold_spans(tmp_path):
    (tmp_path / "cnli.json").write_text(json.dumps(contract_nli_json()), encoding="utf-8")
    data = read_raw(cnli_spec(), tmp_path)
    assert data.label_names == ["Contradiction", "Entailment", "NotMentioned"]
    examples = data.examples
    assert len(examples) == 10
    assert Counter(ex.group for ex in examples) == {"doc-a": 5, "doc-b": 5}
    pairs = {(ex.group, ex.text): ex for ex in examples}
    # Every passage is a unit of its own document, and the text is the hypothesis.
    for (doc, hypothesis), ex in pairs.items():
        assert hypothesis in HYPOTHESES.values()
        assert ex.text_pair in UNITS[doc]
    # The passage is the unit most similar to the hypothesis, even where the gold
    # evidence is another (dissimilar) unit: gold spans are not used to pick it.
    first = pairs[("doc-a", HYPOTHESES["nda-1"])]
    assert first.text_pair == UNITS["doc-a"][0]
    assert "Bananas" not in first.text_pair
    assert pairs[("doc-b", HYPOTHESES["nda-3"])].text_pair == UNITS["doc-b"][3]
    assert pairs[("doc-a", HYPOTHESES["nda-1"])].label == 1  # Entailment
    assert pairs[("doc-a", HYPOTHESES["nda-4"])].label == 2  # NotMentioned
    # Recall at 1: gold units doc-a {1,2,3,5} + doc-b {1,0,5}; found doc-a 2,3,5 and
    # doc-b 1,5 (the banana and penguin units are never retrieved): 5 of 7.
    assert data.stats == {"retrieval_recall_at_1": round(5 / 7, 4)}


def test_contract_nli_passages_do_not_depend_on_gold_spans(tmp_path):
    moved = {doc: {k: (c, [0] if s else []) for k, (c, s) in ann.items()} for doc, ann in ANNOTATIONS.items()}
    (tmp_path / "gold.json").write_text(json.dumps(contract_nli_json()), encoding="utf-8")
    (tmp_path / "moved.json").write_text(json.dumps(contract_nli_json(moved)), encoding="utf-8")
    gold = read_raw(cnli_spec("gold.json"), tmp_path)
    other = read_raw(cnli_spec("moved.json"), tmp_path)
    assert [ex.text_pair for ex in gold.examples] == [ex.text_pair for ex in other.examples]
    assert gold.stats != other.stats  # only the evaluation of retrieval changes


def test_two_documents_are_too_few_to_split(tmp_path):
    # both documents would land in training (a document never straddles splits), leaving
    # dev and test empty: every trial would fail, so loading refuses
    (tmp_path / "cnli.json").write_text(json.dumps(contract_nli_json()), encoding="utf-8")
    with pytest.raises(DataError, match="2 documents/questions are too few"):
        load_task(cnli_spec(), data_dir=tmp_path)


def test_contract_nli_malformed_file(tmp_path):
    (tmp_path / "cnli.json").write_text(json.dumps({"documents": []}), encoding="utf-8")
    with pytest.raises(DataError, match="ContractNLI") as info:
        load_task(cnli_spec(), data_dir=tmp_path)
    assert "cnli.json" in str(info.value)


# -- JEC-QA -------------------------------------------------------------------------


def write_jec(path: Path, questions: int) -> Path:
    lines = []
    for q in range(questions):
        answer = [["A"], ["B", "C"], ["D"], ["A", "B", "C", "D"]][q % 4]
        row = {
            "answer": answer,
            "id": f"1_{q}",
            "option_list": {letter: f"选项{letter}{q}" for letter in "DCBA"},  # unsorted on purpose
            "statement": f"问题{q}：原告是否应当胜诉？",
            "subject": "民法",
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jec_qa_four_grouped_pairs_per_question(tmp_path):
    write_jec(tmp_path / "jec_qa" / "train.jsonl", questions=3)
    data = load_task("jec_qa", data_dir=tmp_path)
    assert data.label_names == ("incorrect", "correct")
    examples = all_examples(data)
    assert len(examples) == 12
    first = sorted((ex for ex in examples if ex.group == "1_0"), key=lambda ex: ex.text_pair)
    assert [(ex.text_pair, ex.label) for ex in first] == [("选项A0", 1), ("选项B0", 0), ("选项C0", 0), ("选项D0", 0)]
    assert {ex.text for ex in first} == {"问题0：原告是否应当胜诉？"}
    second = {ex.text_pair: ex.label for ex in examples if ex.group == "1_1"}
    assert second == {"选项A1": 0, "选项B1": 1, "选项C1": 1, "选项D1": 0}
    assert Counter(ex.group for ex in examples) == {"1_0": 4, "1_1": 4, "1_2": 4}


def test_jec_qa_needs_options_and_answer(tmp_path):
    path = tmp_path / "jec_qa" / "train.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"statement": "问题", "answer": "A"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1") as info:
        load_task("jec_qa", data_dir=tmp_path)
    assert "option_list" in str(info.value)


# -- CJRC ---------------------------------------------------------------------------


def write_cjrc(path: Path, cases: int) -> Path:
    data = []
    for c in range(cases):
        context = f"案件{c}：原告张三与被告李四于2010年结婚，因夫妻感情破裂诉至法院。"
        start = context.index("夫妻感情破裂")
        qas = [
            {"question": "因何离婚？", "answers": [{"answer_start": start, "text": "夫妻感情破裂"}],
             "id": f"{c}_1", "is_impossible": "false"},
            {"question": "是否结婚？", "answers": [{"answer_start": -1, "text": "YES"}], "id": f"{c}_2",
             "is_impossible": "false"},
            {"question": "是否有子女？", "answers": [{"answer_start": -1, "text": "no"}], "id": f"{c}_3",
             "is_impossible": "false"},
            {"question": "房产价值多少？", "answers": [], "id": f"{c}_4",
             "is_impossible": "true" if c % 2 else True},
        ]
        data.append({"caseid": f"case{c}", "domain": "civil", "paragraphs": [{"context": context, "casename": "x",
                                                                               "qas": qas}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": data, "version": "1.0"}, ensure_ascii=False), encoding="utf-8")
    return path


def test_cjrc_answer_types(tmp_path):
    write_cjrc(tmp_path / "a.json", cases=4)
    write_cjrc(tmp_path / "b.json", cases=4)
    spec = dataclasses.replace(TASKS["cjrc"], files=("a.json", "b.json"))
    data = load_task(spec, data_dir=tmp_path)
    assert data.label_names == ("span", "yes", "no", "unanswerable")
    examples = all_examples(data)
    assert len(examples) == 32
    assert Counter(ex.label for ex in examples) == {0: 8, 1: 8, 2: 8, 3: 8}
    by_question = {}
    for ex in examples:
        by_question.setdefault(ex.text, []).append(ex)
    span = by_question["因何离婚？"][0]
    assert span.label == 0 and span.text_pair.startswith("案件")
    assert span.answer == (span.text_pair.index("夫妻感情破裂"), "夫妻感情破裂")
    assert span.text_pair[span.answer[0] : span.answer[0] + len(span.answer[1])] == span.answer[1]
    assert {ex.label for ex in by_question["是否结婚？"]} == {1}
    assert {ex.label for ex in by_question["是否有子女？"]} == {2}  # lower-case "no" counts
    assert {ex.label for ex in by_question["房产价值多少？"]} == {3}  # "true" and True
    assert all(ex.answer is None for ex in examples if ex.label != 0)
    assert {ex.group for ex in examples} == {f"case{c}" for c in range(4)}


def test_cjrc_malformed(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), encoding="utf-8")
    spec = dataclasses.replace(TASKS["cjrc"], files=("a.json",))
    with pytest.raises(DataError, match="CJRC") as info:
        load_task(spec, data_dir=tmp_path)
    assert "a.json" in str(info.value)


# -- custom files -------------------------------------------------------------------


def test_custom_csv_tsv_jsonl_with_text_pair(tmp_path):
    rows = [(f"question {i}", f"passage {i}" if i % 4 else "", ["yes", "no", "maybe"][i % 3]) for i in range(12)]
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "text_pair", "label"])
        w.writerows(rows)
    with (tmp_path / "d.tsv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["label", "text_pair", "text"])
        w.writerows([(label, pair, text) for text, pair, label in rows])
    with (tmp_path / "d.jsonl").open("w", encoding="utf-8") as f:
        for text, pair, label in rows:
            f.write(json.dumps({"text": text, "label": label, **({"text_pair": pair} if pair else {})}) + "\n\n")
    loaded = [load_task(f"custom:{tmp_path / name}") for name in ("d.csv", "d.tsv", "d.jsonl")]
    expected = {text: (pair or None, label) for text, pair, label in rows}
    for data in loaded:
        assert data.label_names == ("maybe", "no", "yes")
        got = {ex.text: (ex.text_pair, data.label_names[ex.label]) for ex in all_examples(data)}
        assert got == expected
        assert data.spec.family == "custom" and data.spec.reader == "custom"
    # The three formats give the same examples in the same splits.
    assert loaded[0].train == loaded[1].train == loaded[2].train
    # custom_task and the "custom:" name are the same spec.
    assert get_spec(f"custom:{tmp_path / 'd.csv'}") == custom_task(tmp_path / "d.csv")
    assert custom_task(tmp_path / "d.csv", name="mine", metric="accuracy").metric == "accuracy"


def test_line_separators_inside_fields(tmp_path):
    # text extracted from PDFs holds form feeds and U+2028: they are not row ends
    texts = ["page one\x0cpage two", "first\u2028second", "vertical\x0btab", "plain", "more", "rest"]
    labels = ["A", "B", "A", "B", "A", "B"]
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)), encoding="utf-8")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in zip(texts, labels)),
        encoding="utf-8",
    )
    assert "\u2028" in jsonl.read_text(encoding="utf-8")  # raw, not escaped
    for path in (tsv, jsonl):
        data = load_task(f"custom:{path}")
        assert sorted((ex.text, data.label_names[ex.label]) for ex in all_examples(data)) == sorted(zip(texts, labels))


def test_custom_integer_labels_in_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(8)), encoding="utf-8")
    data = load_task(f"custom:{path}")
    assert data.label_names == ("0", "1")
    assert all(data.label_names[ex.label] == str(int(ex.text[1:]) % 2) for ex in all_examples(data))


# -- splits -------------------------------------------------------------------------


def test_split_is_deterministic(tmp_path):
    path = write_custom(tmp_path / "d.csv", {"A": 40, "B": 10, "C": 3, "D": 3})
    first = reload(f"custom:{path}")
    second = reload(f"custom:{path}")
    assert first is not second
    assert (first.train, first.dev, first.test) == (second.train, second.dev, second.test)
    assert first.data_hash == second.data_hash and len(first.data_hash) == 16
    # load_task caches: the same object within a process
    assert load_task(f"custom:{path}") is load_task(f"custom:{path}")


def test_split_is_stratified_with_hand_computed_sizes(tmp_path):
    path = write_custom(tmp_path / "d.csv", {"A": 40, "B": 10, "C": 3, "D": 3})
    data = load_task(f"custom:{path}")
    names = data.label_names
    per_split = {
        split: Counter(names[ex.label] for ex in getattr(data, split)) for split in ("train", "dev", "test")
    }
    # dev = test = round(0.15 n), at least 1 for classes of >= 3: A 6/6, B round(1.5) = 2, C and D 1
    assert per_split["dev"] == {"A": 6, "B": 2, "C": 1, "D": 1}
    assert per_split["test"] == {"A": 6, "B": 2, "C": 1, "D": 1}
    assert per_split["train"] == {"A": 28, "B": 6, "C": 1, "D": 1}
    assert data.sizes() == {"train": 36, "dev": 10, "test": 10}
    texts = [ex.text for ex in all_examples(data)]
    assert len(texts) == len(set(texts)) == 56  # a partition: nothing lost, nothing twice


def test_data_hash_changes_with_content(tmp_path):
    a = write_custom(tmp_path / "a.csv", {"A": 5, "B": 5})
    b = write_custom(tmp_path / "b.csv", {"A": 5, "B": 6})
    assert load_task(f"custom:{a}").data_hash != load_task(f"custom:{b}").data_hash


def test_group_split_never_splits_a_group(tmp_path):
    write_jec(tmp_path / "jec_qa" / "train.jsonl", questions=40)
    data = load_task("jec_qa", data_dir=tmp_path)
    groups = {split: {ex.group for ex in getattr(data, split)} for split in ("train", "dev", "test")}
    assert not groups["train"] & groups["dev"]
    assert not groups["train"] & groups["test"]
    assert not groups["dev"] & groups["test"]
    assert len(groups["train"] | groups["dev"] | groups["test"]) == 40
    for split in ("train", "dev", "test"):
        counts = Counter(ex.group for ex in getattr(data, split))
        assert set(counts.values()) == {4}  # whole questions only
    assert len(groups["dev"]) >= 2 and len(groups["test"]) >= 2


def test_capped_train_subset(tmp_path):
    path = write_custom(tmp_path / "d.csv", {"A": 40, "B": 10, "C": 3, "D": 3})
    data = load_task(f"custom:{path}")  # train: A 28, B 6, C 1, D 1
    keep = data.train_subset(8)
    assert keep == sorted(keep) and len(set(keep)) == 8
    assert keep == data.train_subset(8)  # deterministic
    capped = data.capped(8)
    assert capped.capped(8) is capped
    counts = Counter(data.label_names[ex.label] for ex in capped.train)
    # quotas max(1, n_y * 8 // 36) = A 6, B 1, C 1, D 1 (9 > 8, so the largest gives one back)
    assert counts == {"A": 5, "B": 1, "C": 1, "D": 1}
    assert capped.train == tuple(data.train[i] for i in keep)
    assert (capped.dev, capped.test, capped.data_hash, capped.label_names) == (
        data.dev, data.test, data.data_hash, data.label_names,
    )
    assert capped.sizes() == {"train": 8, "dev": 10, "test": 10}
    # a larger cap keeps every class and the proportions roughly
    big = Counter(data.label_names[ex.label] for ex in data.capped(20).train)
    assert sum(big.values()) == 20 and set(big) == {"A", "B", "C", "D"}
    # no cap, or a cap above the size: the same task
    assert data.capped(None) is data and data.capped(36) is data and data.capped(1000) is data
    with pytest.raises(ValueError, match="number of labels"):
        data.train_subset(3)


def test_meta_features(tmp_path):
    path = write_custom(tmp_path / "d.csv", {"A": 40, "B": 10, "C": 3, "D": 3})
    data = load_task(f"custom:{path}")
    meta = data.meta_features()
    mean = sum(len(ex.text) for ex in data.train) / 36
    majority = max(sum(ex.label == label for ex in data.train) for label in range(4)) / 36
    assert meta == {"family": -1.0, "train_size": 36.0, "num_labels": 4.0, "majority_share": pytest.approx(majority),
                    "mean_chars": pytest.approx(mean)}
    assert 0.6 < majority < 0.8  # A is 40 of 56 examples, and the split is stratified


# -- bad input ----------------------------------------------------------------------


def test_unknown_task_lists_valid_ones():
    with pytest.raises(UnknownTaskError) as info:
        load_task("unfair-tos")
    message = str(info.value)
    assert "'unfair-tos'" in message and "custom:" in message
    for name in TASKS:
        assert name in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="task must be"):
        load_task(42)


def test_missing_data_dir_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    with pytest.raises(DataError, match=DATA_ENV_VAR):
        load_task("unfair_tos")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=DATA_ENV_VAR) as info:
        load_task("unfair_tos")
    assert "nowhere" in str(info.value)
    with pytest.raises(DataError, match="data_dir") as info:
        load_task("unfair_tos", data_dir=tmp_path / "elsewhere")
    assert "elsewhere" in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError) as info:
        load_task("unfair_tos", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "legalbench" / "unfair_tos.tsv") in message and DATA_ENV_VAR in message
    with pytest.raises(DataError, match="does not exist") as info:
        load_task(f"custom:{tmp_path / 'absent.csv'}")
    assert str(tmp_path / "absent.csv") in str(info.value) and DATA_ENV_VAR not in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("empty.csv", b"", ["is empty"]),
        ("blank.tsv", b"  \n\n", ["is empty"]),
        ("header.csv", b"text,label\n", ["no rows"]),
        ("nocol.csv", b"sentence,label\nhello,A\nbye,B\n", ["missing column", "'text'", "sentence"]),
        ("nolabel.tsv", b"text\tclass\nhello\tA\n", ["missing column", "'label'"]),
        ("latin1.csv", "text,label\nclause café,A\n".encode("latin-1"), ["not UTF-8", "byte 21"]),
        ("bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": "c", "label":\n',
         ["line 3", "not valid JSON"]),
        ("list.jsonl", b'{"text": "a", "label": "x"}\n[1, 2]\n', ["line 2", "JSON object"]),
        ("nested.jsonl", b'{"text": {"a": 1}, "label": "x"}\n', ["row 1", "'text'"]),
        ("emptycell.csv", b"text,label\nhello,A\n,B\n", ["row 2", "'text'", "missing or empty"]),
        ("single.csv", b"text,label\na,A\nb,A\nc,A\n", ["single value", "'label'"]),
        ("data.txt", b"text,label\na,A\n", ["unsupported file type", ".txt"]),
    ],
)
def test_bad_custom_files(tmp_path, name, content, fragments):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_task(f"custom:{path}")
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_too_few_examples(tmp_path):
    path = write_custom(tmp_path / "d.csv", {"A": 2, "B": 2})
    with pytest.raises(DataError, match="too few"):
        load_task(f"custom:{path}")


def test_rare_classes_always_reach_training(tmp_path):
    # classes of 1 or 2 examples get round(0.15 n) = 0 dev and test examples: all train
    path = write_custom(tmp_path / "d.csv", {"A": 30, "B": 1, "C": 2})
    data = load_task(f"custom:{path}")
    names = data.label_names
    assert Counter(names[ex.label] for ex in data.train) == {"A": 22, "B": 1, "C": 2}
    assert {names[ex.label] for ex in data.dev + data.test} == {"A"}


def write_cjrc_rare(path: Path, rare_case: int) -> None:
    """Three cases of span questions; one unanswerable question in case ``rare_case``."""
    data = []
    for c in range(3):
        qas = [{"question": f"问{c}{q}", "answers": [{"answer_start": 3, "text": "夫妻"}], "is_impossible": "false"}
               for q in range(4)]
        if c == rare_case:
            qas.append({"question": "无", "answers": [], "is_impossible": "true"})
        data.append({"caseid": f"case{c}", "paragraphs": [{"context": f"案件{c}：夫妻感情破裂。", "qas": qas}]})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")


def test_label_missing_from_training_is_an_error(tmp_path):
    # With the fixed split seed, of three cases case0 goes to train, case1 to test, case2
    # to dev: a label found only in case1 cannot be learned.
    spec = dataclasses.replace(TASKS["cjrc"], files=("a.json",))
    write_cjrc_rare(tmp_path / "a.json", rare_case=0)
    data = load_task(spec, data_dir=tmp_path)
    assert {ex.group for ex in data.train} == {"case0"} and 3 in {ex.label for ex in data.train}
    write_cjrc_rare(tmp_path / "a.json", rare_case=1)
    with pytest.raises(DataError, match=r"\['unanswerable'\].*training"):
        reload(spec, tmp_path)


def test_task_table_specs():
    founding = {"unfair_tos", "overruling", "contract_nli", "scotus", "jec_qa", "cjrc"}
    suite = {t for t in TASKS if t.startswith(("cuad_", "diversity_"))}
    assert set(TASKS) == founding | suite and len(suite) == 27
    assert {TASKS[t].family for t in suite} == {"contract_clauses", "jurisdiction"}
    assert len([t for t in TASKS.values() if t.language == "en"]) == 31
    assert {spec.family for spec in TASKS.values()} == set(FAMILIES)
    for spec in TASKS.values():
        assert spec.files and spec.metric in ("macro_f1", "accuracy")
    with pytest.raises(ValueError, match="family"):
        dataclasses.replace(TASKS["scotus"], family="regression")
    with pytest.raises(ValueError, match="metric"):
        dataclasses.replace(TASKS["scotus"], metric="f1")


def test_diversity_tasks_never_read_the_two_halves_of_their_answer(tmp_path):
    # parties_are_diverse and aic_is_met together are the label: a marker in them must
    # reach no example, and the label must come from the label column alone
    (tmp_path / "legalbench").mkdir()
    rows = ["text\tlabel\tparties_are_diverse\taic_is_met"]
    for i in range(30):
        label = "Yes" if i % 3 == 0 else "No"
        rows.append(f"Ann is from Ohio, case {i}.\t{label}\tLEAK_DIVERSE_{label}\tLEAK_AIC_{label}")
    for level in range(1, 6):
        (tmp_path / "legalbench" / f"diversity_{level}.tsv").write_text("\n".join(rows) + "\n")
        data = load_task(f"diversity_{level}", tmp_path)
        examples = data.train + data.dev + data.test
        assert len(examples) == 30 and data.label_names == ("No", "Yes")
        assert not any("LEAK" in ex.text or "LEAK" in (ex.text_pair or "") for ex in examples)
        assert Counter(data.label_names[ex.label] for ex in examples) == {"No": 20, "Yes": 10}


def test_the_standard_split_holds_whole_families_out():
    from legal_hpo_env.tasks.suite import TEST_FAMILIES, TRAIN_FAMILIES

    train, test = TASK_SETS["suite:train"], TASK_SETS["suite:test"]
    assert len(train) == 24 and len(test) == 7 and not set(train) & set(test)
    assert {TASKS[t].family for t in train} == set(TRAIN_FAMILIES)
    assert {TASKS[t].family for t in test} == set(TEST_FAMILIES) and not set(TRAIN_FAMILIES) & set(TEST_FAMILIES)
    assert set(TASK_SETS["suite:all"]) == set(train) | set(test) == {t for t, s in TASKS.items() if s.language == "en"}
    assert TASK_SETS["family:case_law"] == ("overruling",) and len(TASK_SETS["family:contract_clauses"]) == 22
    assert "family:chinese_qa" not in TASK_SETS  # the default English model does not fit it
    assert expand_tasks(["family:judgment", "unfair_tos", "scotus"]) == ["scotus", "unfair_tos"]
    with pytest.raises(ValueError, match="unknown task set 'suite:dev'"):
        expand_tasks(["suite:dev"])
