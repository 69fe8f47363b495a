"""A tuned model you can use: saved the Hugging Face way, loaded and run on new text.

A ``finetune`` model is a whole classifier (``save_pretrained``: weights, config with the
label names, tokenizer); a ``head`` model is the trained linear head and the feature
standardisation (safetensors), with a reference to its frozen encoder. Either folder also
holds ``legal_hpo.json`` (the configuration, scores, split sizes, data hash: plain JSON)
and a short model card, ``README.md``. Loading one runs no code from it.

>>> from legal_hpo_env.model import TunedModel
>>> model = TunedModel.load("my-model")                                    # doctest: +SKIP
>>> model.predict(["The Licensee may not assign this Agreement."])         # doctest: +SKIP
[{'label': 'Yes', 'probabilities': {'No': 0.08, 'Yes': 0.92}}]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legal_hpo_env.backends.base import TrialResult

__all__ = ["TunedModel", "MODEL_FILE", "HEAD_WEIGHTS", "write_model_files", "ModelFileError"]

MODEL_FILE = "legal_hpo.json"
HEAD_WEIGHTS = "head.safetensors"
FORMAT = "legal-hpo-model"


class ModelFileError(ValueError):
    """A folder that is not a saved LegalHPO model, or one that is damaged."""


def write_model_files(folder: Path, result: TrialResult, kind: str, max_length: int, encoder: str | None) -> None:
    """Write ``legal_hpo.json`` and the model card beside the weights."""
    meta = {
        "format": FORMAT,
        "kind": kind,
        "task": result.task,
        "metric": result.metric,
        "label_names": result.extra.get("label_names"),
        "max_length": max_length,
        "encoder": encoder,
        "config": result.config,
        "fidelity": result.fidelity,
        "seed": result.seed,
        "scores": {k: getattr(result, k) for k in ("dev_score", "test_score", "dev_accuracy", "dev_macro_f1",
                                                    "test_accuracy", "test_macro_f1")},
        "selected_epoch": result.selected_epoch,
        "split_sizes": result.sizes,
        "data_hash": result.data_hash,
        "code_version": result.code_version,
        "model": result.model,
    }
    (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    what = "every weight fine-tuned" if kind == "finetune" else f"a linear head on the frozen encoder {result.model}"
    card = f"""# {result.task}: {kind} model tuned with LegalHPO

{result.model}, {what}; labels {', '.join(result.extra.get('label_names') or [])}.

| | dev | test |
|---|---|---|
| {result.metric} (headline) | {result.dev_score:.4f} | {result.test_score:.4f} |
| accuracy | {result.dev_accuracy:.4f} | {result.test_accuracy:.4f} |
| macro-F1 | {result.dev_macro_f1:.4f} | {result.test_macro_f1:.4f} |

Configuration: {json.dumps(result.config)}; fidelity {json.dumps(result.fidelity)}; seed {result.seed}; best dev epoch
{result.selected_epoch}. Split sizes {json.dumps(result.sizes)}, data hash {result.data_hash}.

Use: `legal-hpo predict --model <this folder> --input texts.csv`, or
`legal_hpo_env.model.TunedModel.load(folder).predict(texts)`.
"""
    (folder / "README.md").write_text(card, encoding="utf-8")


class TunedModel:
    """A saved model, ready to predict. Create it with :meth:`load`."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta
        self.label_names: list[str] = list(meta["label_names"])
        self.max_length = int(meta["max_length"])
        self._loaded: Any = None

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TunedModel:
        path = Path(folder)
        if not (path / MODEL_FILE).is_file():
            raise ModelFileError(
                f"{path} is not a saved LegalHPO model (no {MODEL_FILE}): save one with "
                "`legal-hpo tune ... --save-model DIR`."
            )
        try:
            meta = json.loads((path / MODEL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{path / MODEL_FILE} is not readable JSON ({e}).") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("kind") not in ("finetune", "head"):
            raise ModelFileError(f"{path / MODEL_FILE} is not a LegalHPO model description.")
        return cls(path, meta)

    def _components(self) -> Any:
        if self._loaded is None:
            import torch

            from legal_hpo_env.backends.models import load_tokenizer, resolve_model

            if self.meta["kind"] == "finetune":
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                # safetensors weights and JSON configs: from_pretrained runs no code from here
                model = AutoModelForSequenceClassification.from_pretrained(self.folder, use_safetensors=True).eval()
                self._loaded = (AutoTokenizer.from_pretrained(self.folder), model, None)
            else:
                from safetensors.torch import load_file
                from transformers import AutoModel

                encoder_name = self.meta["encoder"]
                encoder = AutoModel.from_pretrained(resolve_model(encoder_name)).eval()
                tensors = load_file(str(self.folder / HEAD_WEIGHTS))
                head = torch.nn.Linear(tensors["weight"].shape[1], tensors["weight"].shape[0])
                head.load_state_dict({"weight": tensors["weight"], "bias": tensors["bias"]})
                self._loaded = (load_tokenizer(encoder_name), encoder, (head.eval(), tensors["mean"], tensors["std"]))
        return self._loaded

    def predict(
        self, texts: list[str], pairs: list[str | None] | None = None, *, batch_size: int = 64, progress: bool = False
    ) -> list[dict[str, Any]]:
        """The predicted label and the class probabilities of each text (and second segment)."""
        import torch
        from tqdm.auto import tqdm

        from legal_hpo_env.backends.finetune import class_logits
        from legal_hpo_env.backends.head import mean_pooled
        from legal_hpo_env.backends.models import encode_texts

        tokenizer, model, head = self._components()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        pairs = pairs if pairs is not None else [None] * len(texts)
        encoded = encode_texts(tokenizer, list(texts), list(pairs), self.max_length)
        device = torch.device("cpu")
        out: list[dict[str, Any]] = []
        # the backends' own inference loops, over parts of 16 batches (the progress bar's steps)
        part = 16 * batch_size
        for start in tqdm(range(0, len(texts), part), desc="predicting", disable=not progress):
            encoded_part = {k: v[start : start + part] for k, v in encoded.items()}
            if head is None:
                logits = class_logits(model, encoded_part, pad_id, device, batch_size)
            else:
                linear, mean, std = head
                features = torch.from_numpy(mean_pooled(model, encoded_part, pad_id, device, batch_size))
                with torch.inference_mode():
                    logits = linear((features - mean) / std)
            for probs in torch.softmax(logits.float(), -1).tolist():
                best = max(range(len(probs)), key=lambda k: probs[k])
                out.append({"label": self.label_names[best], "probabilities": dict(zip(self.label_names, probs))})
        return out
