"""Training FLOPs of an SFT job, counted from the model's shape and the rows' lengths (for MFU).

    from bench.flops import ModelShape, training_flops
    shape = ModelShape.from_config(json.load(open(folder / "config.json")))
    flops = training_flops(shape, rows, method="lora", rank=8)   # rows: [(tokens, supervised targets), ...]

Only matrix multiplies are counted (norms, activations, softmax, RoPE and the optimizer are not), 2 FLOPs per
multiply-add, over the work the job *needs*, the same for every contender whatever it computes:

* a row of ``n`` tokens feeds ``n - 1`` input positions through every layer (the last token is only a target);
* forward, per position: ``2 * N_lin`` for the layers' linear weights (``N_lin`` = q, k, v, o, gate, up, down);
  attention ``2 * H * hd * n_q`` per query position attending ``n_q`` causal keys (QK^T and PV), which sums
  to ``2 * H * hd * n(n+1)/2 * 2`` per row and layer;
* backward of the layers trained (all of them in the bench): input gradients ``2 * N_lin`` per position and
  twice the forward attention; **full fine-tuning** adds weight gradients, ``2 * N_lin`` more (so 6 N per
  token in total), **LoRA** does not (frozen weights: 4 N per token) but adds the adapters, ``6 * r * (in + out)``
  per adapted linear per position;
* the vocabulary head (``2 * d * V``) and its input gradient (``2 * d * V``) only at supervised positions,
  since the loss needs logits nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, cfg: dict) -> "ModelShape":
        heads = cfg["num_attention_heads"]
        return cls(hidden=cfg["hidden_size"], intermediate=cfg["intermediate_size"],
                   layers=cfg["num_hidden_layers"], heads=heads, kv_heads=cfg.get("num_key_value_heads", heads),
                   head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads, vocab=cfg["vocab_size"])

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer in one transformer block."""
        d, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [(d, q), (d, kv), (d, kv), (q, d), (d, i), (d, i), (i, d)]

    def linear_params(self) -> int:
        return sum(a * b for a, b in self.linears())


def training_flops(shape: ModelShape, rows: list[tuple[int, int]], *, method: str, rank: int = 8,
                   trained_layers: int | None = None) -> dict[str, float]:
    """FLOPs of one pass over ``rows`` = [(tokens, supervised targets)], split by part, plus ``total``."""
    trained = shape.layers if trained_layers is None or trained_layers < 0 else min(trained_layers, shape.layers)
    n_lin = shape.linear_params()
    positions = sum(max(n - 1, 0) for n, _ in rows)
    supervised = sum(s for _, s in rows)
    attn_fwd_per_layer = sum(2 * shape.heads * shape.head_dim * (n - 1) * n for n, _ in rows)
    lora_params = sum(rank * (a + b) for a, b in shape.linears())
    out = {
        "linear_forward": 2.0 * n_lin * shape.layers * positions,
        "linear_backward": (4.0 if method == "full" else 2.0) * n_lin * trained * positions,
        "attention": attn_fwd_per_layer * (shape.layers + 2.0 * trained),
        "lora": 6.0 * lora_params * trained * positions if method != "full" else 0.0,
        "head": 4.0 * shape.hidden * shape.vocab * supervised,
    }
    out["total"] = sum(out.values())
    out["positions"] = float(positions)
    out["supervised"] = float(supervised)
    return out
