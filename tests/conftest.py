"""Shared fixtures: a tiny BERT and tiny legal-looking datasets, built offline in the test,
and LegalHPO-v0 on them. Helpers and constants are in support.py."""

from __future__ import annotations

import pytest

from support import WORDS, write_classification_csv


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


@pytest.fixture
def tiny_task(tmp_path) -> str:
    """Task name of a small custom CSV task (60 examples, 3 balanced classes)."""
    return f"custom:{write_classification_csv(tmp_path / 'tiny.csv')}"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Feature caches go to a per-test folder, never to the user's home."""
    monkeypatch.setenv("LEGAL_HPO_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module: on a small, shared machine the tiny models train
    several times faster than with one thread per core competing for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def env_kwargs(tiny_task, tiny_model):
    return dict(task=tiny_task, backend="head", model=tiny_model, budget=3, max_length=32, device="cpu")


@pytest.fixture
def make(env_kwargs):
    """A factory of LegalHPOEnv on the tiny task and model: ``make(**changes)``."""
    from legal_hpo_env.env import LegalHPOEnv

    def factory(**changes) -> LegalHPOEnv:
        return LegalHPOEnv(**{**env_kwargs, **changes})

    return factory
