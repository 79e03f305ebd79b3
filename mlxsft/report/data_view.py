"""The report's data section: the splits as the model saw them, from ``data_summary.json``.

    data_section(runs)

Rows and tokens, the supervised fraction, a length histogram with ``max_seq_len`` marked, what was truncated,
dropped or left out, padding (or packing) efficiency, and a few rows as tokens with the supervised ones
highlighted: the spans ``mlxsft data inspect`` shows (``mlxsft.data.summary.token_spans``).
"""

from __future__ import annotations

from typing import Any

from mlxsft.data.summary import token_spans
from mlxsft.report.html import Raw, cards, esc, key_values, missing, per_run, section
from mlxsft.report.sources import RunView
from mlxsft.report.svg import histogram_chart


def data_section(runs: list[RunView]) -> str:
    return section("Data as the model saw it", per_run(runs, _run_data), "data",
                   note="after the chat template, masks and max_seq_len: exactly the token ids training used")


def _run_data(run: RunView) -> str:
    if not run.data or not run.data.get("train"):
        return missing(f"{run.path}: no data_summary.json (a run from before the report wrote it); "
                       f"`mlxsft data stats` and `mlxsft data inspect` with the run's data and model show it")
    train, valid = run.data["train"], run.data.get("valid")
    pack = bool(run.data.get("pack"))
    out = [_cards(train, pack)]
    hist = histogram_chart(f"lengths-{run.ident}", [tuple(b) for b in train.get("histogram") or []],
                           x_label="tokens per row", y_label="rows", run=run.ident, color=run.color,
                           markers=[(train["max_seq_len"], f"max_seq_len {train['max_seq_len']}")])
    out.append(f'<div class="grid2"><figure><h3>Row lengths (train)</h3>{hist}</figure>'
               f"<div><h3>What training kept</h3>{_counts(train, valid, pack)}</div></div>")
    samples = train.get("samples") or []
    if samples:
        out.append(f"<h4>The first {len(samples)} training rows, as tokens</h4>"
                   '<p class="note"><span class="tok-sup">supervised</span> tokens are learned (the loss is on '
                   'them), <span class="tok-ctx">grey</span> ones are context; ↵ marks a newline</p>')
        out += [_tokens(s, train["max_seq_len"]) for s in samples]
    return "".join(out)


def _cards(train: dict[str, Any], pack: bool) -> str:
    length = train.get("length") or {}
    used = _padding(train, pack)
    return cards([
        ("rows trained on", f"{train['rows']:,}", f"of {train['rows_in']:,} in {train.get('split', 'train')}"),
        ("tokens", f"{train['total_tokens']:,}", f"{train['supervised_tokens']:,} supervised"),
        ("supervised", f"{train['supervised_fraction']:.1%}", f"train_on={train.get('train_on')}"),
        ("row length", f"{length.get('median', 0):.0f}", f"median; p95 {length.get('p95', 0):.0f}, "
                                                        f"max {length.get('max', 0)}"),
        ("packing efficiency" if pack else "padding efficiency", f"{1 - used:.1%}" if used is not None else "—",
         "of batch tokens are real, not padding" + (" (packed)" if pack else " (length-grouped)")),
    ])


def _padding(train: dict[str, Any], pack: bool) -> Any:
    pad = (train.get("padding") or {}).get("packed" if pack else "unpacked") or {}
    return pad.get("padding_fraction")


def _counts(train: dict[str, Any], valid: Any, pack: bool) -> str:
    pad = train.get("padding") or {}
    rows = [
        ("rows in the split", f"{train['rows_in']:,}"),
        (f"truncated to max_seq_len {train['max_seq_len']}", f"{train.get('truncated', 0):,}"),
        ("dropped as too long", f"{train.get('dropped_overlong', 0):,}"),
        ("nothing supervised, left out", f"{train.get('no_supervised_rows', 0):,}"),
        ("malformed, left out", f"{train.get('invalid_rows', 0) or 0:,}"),
        ("assistant turns", f"{train.get('assistant_turns', 0):,} ({train.get('multi_turn_rows', 0):,} multi-turn rows)"),
    ]
    for mode in ("unpacked", "packed"):
        p = pad.get(mode)
        if p:
            used = " (this run)" if (mode == "packed") == pack else ""
            rows.append((f"padding, {'packed' if mode == 'packed' else 'length-grouped'}{used}",
                         f"{p['padding_fraction']:.1%} of {p['batches']:,} batches of {train.get('batch_size')}"))
    rows.append(("validation split", f"{valid['rows']:,} rows, {valid['total_tokens']:,} tokens "
                                      f"({valid['supervised_fraction']:.1%} supervised)" if valid else "none"))
    rows.append(("source", f"{train.get('source')} [{train.get('split')}]"))
    return key_values(rows)


def _tokens(sample: dict[str, Any], max_seq_len: int) -> str:
    pieces, mask = sample.get("pieces") or [], sample.get("mask") or []
    html = []
    for span in token_spans(pieces, mask, max_seq_len):
        css = ("tok-sup" if span.supervised else "tok-ctx") + (" tok-cut" if span.cut else "")
        html.append(f'<span class="{css}">{esc(span.text)}</span>')
    head = f"row {sample.get('row')}: {len(pieces)} tokens, {sum(mask)} supervised"
    return f'<div class="note mono">{esc(head)}</div><div class="tokens">{Raw("".join(html))}</div>'
