"""``loss.png``: train and validation loss curves from ``metrics.jsonl`` (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss(records: list[dict[str, Any]], out: Path) -> Path | None:
    train = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if val:
        ax.plot(*zip(*val), label="val loss", color="tab:orange", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (NLL per supervised token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out)


def save_figure(fig: Any, out: Path) -> Path:
    """Write a matplotlib figure as PNG through a temporary file and a rename (a kill never leaves half a PNG)."""
    import matplotlib.pyplot as plt

    out = Path(out)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
