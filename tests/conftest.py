"""Shared fixtures: a tiny BERT and tiny legal-looking datasets, built offline in the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The real data, where CI and developers have it (never inside the repository).
REAL_DATA = Path(os.environ.get("LEGAL_HPO_DATA") or REPO.parent / "shared" / "data" / "legal")

WORDS = (
    "the a of to and in is for by any we you our may this terms agreement party court shall not "
    "service user content right law arbitration dispute liability terminate change remove overrule "
    "precedent held case judgment affirmed reversed contract confidential information receiving "
    "disclosing return destroy 中 国 法 院 判 决 原 告 被 告 是 否 离 婚"
).split()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT (hidden 32) with a WordPiece tokenizer, saved to disk."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *[c for c in ".,?!'()-:;0123456789"]]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    # from_pretrained on the folder: transformers 5 ignores a ``vocab_file=`` argument to the
    # constructor, which left a tokenizer mapping every word to [UNK].
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def write_classification_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A small learnable 3-class task: the label is signalled by a keyword."""
    import random

    rng = random.Random(seed)
    keywords = {"arbitration": "Arbitration", "terminate": "Termination", "service": "Other"}
    lines = ["text,label"]
    for i in range(n):
        word = list(keywords)[i % 3]
        filler = " ".join(rng.choice(WORDS[:20]) for _ in range(rng.randint(3, 12)))
        lines.append(f'"{filler} {word} {filler}",{keywords[word]}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_task(tmp_path) -> str:
    """Task name of a small custom CSV task (60 examples, 3 balanced classes)."""
    return f"custom:{write_classification_csv(tmp_path / 'tiny.csv')}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Feature caches go to a per-test folder, never to the user's home."""
    monkeypatch.setenv("LEGAL_HPO_CACHE", str(tmp_path / "cache"))


def real_data_available() -> bool:
    return (REAL_DATA / "legalbench" / "unfair_tos.tsv").is_file()


requires_real_data = pytest.mark.skipif(
    not real_data_available(), reason=f"real legal data not found at {REAL_DATA} (set LEGAL_HPO_DATA)"
)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module: on a small, shared machine the tiny models train
    several times faster than with one thread per core competing for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
