"""Readers: legal data files -> examples.

Each reader takes the task spec and the resolved file paths and returns the label names
and a list of :class:`Example`. Readers never see the split: splitting is one shared,
seeded step (:mod:`legal_hpo_env.tasks.splits`). Malformed input raises
:class:`DataError` naming the file and the line or column.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from legal_hpo_env.tasks.specs import TaskSpec

__all__ = ["Example", "RawTask", "DataError", "READERS", "read_table"]


class DataError(ValueError):
    """A data file is missing, empty or malformed."""


@dataclass(frozen=True)
class Example:
    """One classification example.

    Attributes:
        text: the input (for pairs: the question or hypothesis).
        label: index into the task's label names.
        text_pair: optional second segment (retrieved passages, an answer option, ...).
        group: id of the source document/question, for group-aware splits.
        answer: for extractive QA data, ``(answer_start, answer_text)`` of the gold span.
    """

    text: str
    label: int
    text_pair: str | None = None
    group: str | None = None
    answer: tuple[int, str] | None = None


@dataclass(frozen=True)
class RawTask:
    """What a reader returns: label names, all examples, and statistics worth reporting."""

    label_names: list[str]
    examples: list[Example]
    stats: dict = field(default_factory=dict)


Reader = Callable[[TaskSpec, list[Path]], RawTask]


def _open_text(path: Path):
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start}): re-save it as UTF-8.") from e


def _index_labels(path: Path, raw_labels: list[str], order: list[str] | None = None) -> tuple[list[str], list[int]]:
    names = order if order is not None else sorted(set(raw_labels))
    position = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(raw_labels) - set(position))
    if unknown:
        raise DataError(f"{path}: unexpected label value(s) {unknown[:5]}; expected one of {names}.")
    return names, [position[x] for x in raw_labels]


def read_table(path: Path, columns: tuple[str, ...] = ("text", "label"), optional: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a CSV, TSV or JSON-lines file as dicts, checking the required columns.

    The format comes from the extension (``.csv``, ``.tsv``, ``.jsonl``/``.json``).
    """
    text = _open_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty: it needs a header and at least one row with columns {list(columns)}.")
    suffix = path.suffix.lower()
    rows: list[dict]
    if suffix in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit in a JSON string
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}, line {n}: not valid JSON ({e.msg}); each line must be one JSON object."
                ) from e
            except RecursionError as e:
                raise DataError(
                    f"{path}, line {n}: JSON nested too deeply; each line must be one flat JSON object."
                ) from e
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {n}: expected a JSON object, got {type(row).__name__}.")
            rows.append(row)
    elif suffix in (".csv", ".tsv"):
        csv.field_size_limit(sys.maxsize)
        # A stream with newline="" (as the csv docs ask), not str.splitlines: that also splits
        # at form feeds and U+2028, which legal text extracted from PDFs contains.
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        rows = list(reader)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; the header has {header}.")
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl.")
    if not rows:
        raise DataError(f"{path} has a header but no rows.")
    for n, row in enumerate(rows, start=1):
        for c in columns:
            value = row.get(c)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{path}, row {n}: column {c!r} is missing or empty.")
        for c in (*columns, *optional):
            if c in row and row[c] is not None and not isinstance(row[c], (str, int, bool)):
                raise DataError(
                    f"{path}, row {n}: column {c!r} must be text or an integer, got {type(row[c]).__name__}."
                )
    return rows


def _legalbench_tsv(spec: TaskSpec, paths: list[Path]) -> RawTask:
    (path,) = paths
    rows = read_table(path)
    names, labels = _index_labels(path, [r["label"].strip() for r in rows])
    return RawTask(names, [Example(text=r["text"].strip(), label=y) for r, y in zip(rows, labels)])


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def strip_html(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


# Never model input: they reveal the outcome (see the data README).
SCOTUS_LEAKING_COLUMNS = ("majority_vote", "minority_vote", "decision_type", "disposition")


def _scotus_oyez(spec: TaskSpec, paths: list[Path]) -> RawTask:
    (path,) = paths
    rows = read_table(path, columns=("facts",), optional=("first_party", "second_party", "first_party_winner"))
    absent = [c for c in ("first_party", "second_party", "first_party_winner") if c not in rows[0]]
    if absent:
        raise DataError(f"{path}: missing column(s) {absent}.")
    examples = []
    for row in rows:
        winner = (row.get("first_party_winner") or "").strip().upper()
        if winner not in ("TRUE", "FALSE"):  # 12 cases have no recorded winner
            continue
        parties = f"{(row['first_party'] or '').strip()} v. {(row['second_party'] or '').strip()}"
        text = f"{parties}. {strip_html(row['facts'])}"
        examples.append(Example(text=text, label=int(winner == "TRUE"), group=row.get("docket")))
    return RawTask(["second party wins", "first party wins"], examples)


def _units(doc: dict) -> list[str]:
    return [doc["text"][start:end] for start, end in doc["spans"]]


def _contract_nli(spec: TaskSpec, paths: list[Path]) -> RawTask:
    from sklearn.feature_extraction.text import TfidfVectorizer

    k = int(dict(spec.options).get("passages", 4))
    docs, hypotheses = [], {}
    for path in paths:
        try:
            data = json.loads(_open_text(path))
            docs.extend(data["documents"])
            hypotheses.update({key: v["hypothesis"] for key, v in data["labels"].items()})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a ContractNLI file (expected 'documents' and 'labels'): {e}") from e
    keys = sorted(hypotheses, key=lambda h: int(h.split("-")[-1]))
    # Passages are chosen by similarity to the hypothesis alone: the gold evidence spans are
    # never used to build the input, only to measure how often retrieval finds them.
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    all_units = [u for d in docs for u in _units(d)]
    vectorizer.fit(all_units + [hypotheses[h] for h in keys])
    hyp_vectors = vectorizer.transform([hypotheses[h] for h in keys])
    names = ["Contradiction", "Entailment", "NotMentioned"]
    examples, found, gold_total = [], 0, 0
    for doc in docs:
        units = _units(doc)
        sims = (vectorizer.transform(units) @ hyp_vectors.T).toarray()  # units x hypotheses
        for j, key in enumerate(keys):
            annotation = doc["annotation_sets"][0]["annotations"].get(key)
            if annotation is None:
                continue
            top = sorted(sorted(range(len(units)), key=lambda i: -sims[i, j])[:k])
            gold = set(annotation.get("spans", []))
            found += len(gold & set(top))
            gold_total += len(gold)
            examples.append(
                Example(
                    text=hypotheses[key],
                    text_pair=" ".join(units[i].strip() for i in top),
                    label=names.index(annotation["choice"]),
                    group=str(doc["id"]),
                )
            )
    return RawTask(names, examples, {f"retrieval_recall_at_{k}": round(found / max(1, gold_total), 4)})


def _jec_qa(spec: TaskSpec, paths: list[Path]) -> RawTask:
    (path,) = paths
    rows = read_table(path, columns=("statement",), optional=())
    examples = []
    for n, row in enumerate(rows, start=1):
        options, answer = row.get("option_list"), row.get("answer")
        if not isinstance(options, dict) or not isinstance(answer, list):
            raise DataError(f"{path}, line {n}: needs 'option_list' (object) and 'answer' (list).")
        group = str(row.get("id", n))
        for letter in sorted(options):
            examples.append(
                Example(text=row["statement"], text_pair=str(options[letter]), label=int(letter in answer), group=group)
            )
    return RawTask(["incorrect", "correct"], examples)


CJRC_ANSWER_TYPES = ["span", "yes", "no", "unanswerable"]


def _cjrc(spec: TaskSpec, paths: list[Path]) -> RawTask:
    examples = []
    for path in paths:
        try:
            data = json.loads(_open_text(path))["data"]
            for article in data:
                for paragraph in article["paragraphs"]:
                    context = paragraph["context"]
                    for qa in paragraph["qas"]:
                        examples.append(_cjrc_example(qa, context, group=str(article.get("caseid", id(article)))))
        except (json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
            raise DataError(f"{path}: not a CJRC (SQuAD-2.0 style) file: {e!r}") from e
    return RawTask(list(CJRC_ANSWER_TYPES), examples)


def _cjrc_example(qa: dict, context: str, group: str) -> Example:
    if qa.get("is_impossible") in (True, "true"):
        return Example(text=qa["question"], text_pair=context, label=3, group=group)
    ans = qa["answers"][0]
    kind = ans["text"].upper() if ans["answer_start"] == -1 else "SPAN"
    if kind not in ("SPAN", "YES", "NO"):
        raise KeyError(
            f"question {qa.get('id', qa['question'])!r}: answer_start -1 needs the text YES or NO, got {ans['text']!r}"
        )
    label = {"SPAN": 0, "YES": 1, "NO": 2}[kind]
    answer = (int(ans["answer_start"]), ans["text"]) if label == 0 else None
    return Example(text=qa["question"], text_pair=context, label=label, group=group, answer=answer)


def _custom(spec: TaskSpec, paths: list[Path]) -> RawTask:
    (path,) = paths
    rows = read_table(path, optional=("text_pair",))
    names, labels = _index_labels(path, [str(r["label"]).strip() for r in rows])
    if len(names) < 2:
        raise DataError(f"{path}: column 'label' has a single value {names}; a task needs at least 2 classes.")
    examples = [
        Example(text=_clean(str(r["text"])), label=y,
                text_pair=(_clean(str(r["text_pair"])) if r.get("text_pair") else None))
        for r, y in zip(rows, labels)
    ]
    return RawTask(names, examples)


def _clean(text: str) -> str:
    """Replace lone surrogates by U+FFFD.

    JSON can spell a lone surrogate (a u-escape of D800 to DFFF) that no tokenizer
    encodes; a UTF-8 decoder would have replaced the invalid bytes the same way.
    """
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")  # a str holds valid pairs as one character: these are lone


READERS: dict[str, Reader] = {
    "legalbench_tsv": _legalbench_tsv,
    "scotus_oyez": _scotus_oyez,
    "contract_nli": _contract_nli,
    "jec_qa": _jec_qa,
    "cjrc": _cjrc,
    "custom": _custom,
}

