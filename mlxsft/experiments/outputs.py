"""What every experiment writes: ``OUT/results.json``, ``OUT/table.md`` and ``OUT/*.png`` (matplotlib, Agg).

    write_results(out, {"experiment": "curation", ...})
    write_table(out, "# Curation beats volume\n\n" + markdown_table(["arm", "right"], [["curated", "31.3 ± 1.5"]]))
    bar_panels(out / "curation.png", ["curated", "random", "pool"],
               [("held-out right", "questions", [spread_a, spread_b, spread_c])])
    stacked_bars(out / "filter.png", ["clean", "wrong"], {"repetition": [0, 3], "kept": [279, 0]})
    scatter_points(out / "methods.png", ["lora-r8", "full"], [kl_a, kl_b], [gain_a, gain_b], "forgot", "learned")

Every file is written to a temporary name and renamed into place, so a kill never leaves half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from mlxsft.experiments.stats import Spread
from mlxsft.plot import save_figure


def write_results(out: Path, results: dict[str, Any]) -> Path:
    from mlxsft.files import atomic_write_json

    atomic_write_json(out / "results.json", results)
    return out / "results.json"


def write_table(out: Path, text: str) -> Path:
    from mlxsft.files import atomic_write_text

    atomic_write_text(out / "table.md", text if text.endswith("\n") else text + "\n")
    return out / "table.md"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """A GitHub markdown table; ``align`` has one ``l`` or ``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def budget_text(setup: dict[str, Any], budget: dict[str, Any], per: str = " per arm") -> str:
    """The sentence every table starts from: the arms' training budget and seeds (``results.json``'s setup/budget)."""
    n = setup["batch_size"]
    sequences = "one packed sequence" if n == 1 else f"{n} packed sequences"
    return (f"{budget['steps']} optimizer steps of {sequences} of {setup['max_seq_len']} "
            f"tokens{per} ({budget['tokens_min']}-{budget['tokens_max']} trained tokens), seeds "
            f"{', '.join(map(str, setup['seeds']))}")


def bar_panels(path: Path, labels: Sequence[str], panels: Sequence[tuple[str, str, Sequence[Spread]]],
               title: Optional[str] = None) -> Path:
    """One bar chart per panel ``(title, y label, a Spread per label)``, side by side: the bar is the mean over
    seeds, the whisker the standard deviation, the dots the seeds themselves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=100, squeeze=False)
    colors = ["tab:green", "tab:orange", "tab:gray", "tab:blue", "tab:red", "tab:purple"]
    for ax, (name, ylabel, spreads) in zip(axes[0], panels):
        xs = range(len(labels))
        means = [s.mean if s.mean is not None else 0.0 for s in spreads]
        errs = [s.sd or 0.0 for s in spreads]
        ax.bar(xs, means, yerr=errs, capsize=4, color=[colors[i % len(colors)] for i in xs], alpha=0.8)
        for x, s in zip(xs, spreads):
            ax.scatter([x] * len(s.values), s.values, color="black", s=10, zorder=3)
        ax.set_xticks(list(xs), list(labels))
        ax.set_title(name)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def stacked_bars(path: Path, categories: Sequence[str], stacks: dict[str, Sequence[int]], title: str = "",
                 xlabel: str = "") -> Path:
    """Horizontal bars, one per category, each cut into the named stacks (counts), in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(categories) + 1.6), dpi=100)
    left = [0] * len(categories)
    cmap = plt.get_cmap("tab20")
    for i, (name, counts) in enumerate(stacks.items()):
        if not any(counts):
            continue
        ax.barh(list(categories), list(counts), left=left, label=name, color=cmap(i % 20))
        left = [a + b for a, b in zip(left, counts)]
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def scatter_points(path: Path, labels: Sequence[str], xs: Sequence[Spread], ys: Sequence[Spread], xlabel: str,
                   ylabel: str, title: Optional[str] = None) -> Path:
    """One point per label at (mean x, mean y) over seeds, with the standard deviation as error bars both ways
    and the seeds themselves as faint dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=100)
    colors = ["tab:blue", "tab:purple", "tab:red", "tab:green", "tab:orange", "tab:gray"]
    for i, (label, x, y) in enumerate(zip(labels, xs, ys)):
        if x.mean is None or y.mean is None:
            continue
        color = colors[i % len(colors)]
        ax.errorbar([x.mean], [y.mean], xerr=[x.sd or 0.0], yerr=[y.sd or 0.0], fmt="o", capsize=4, color=color,
                    label=label, markersize=7)
        if len(x.values) == len(y.values):
            ax.scatter(x.values, y.values, color=color, alpha=0.35, s=14)
        ax.annotate(label, (x.mean, y.mean), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
