"""The page shell and small HTML helpers of the report: escaping, tables, stat cards, the inline CSS and JS.

    page("mlxsft report: sft-0712", body)        # a whole, self-contained document
    table(["step", "loss"], [[1, "2.31"]], numeric={0, 1})

Everything a user wrote (rows, answers, config values, file names) goes through ``esc`` before it reaches the
page; the helpers here escape their cells themselves, and ``Raw`` marks a cell that is already HTML. No
network: the styles and the few lines of script (the question filter) are inline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence


@dataclass(frozen=True)
class Raw:
    """A fragment that is already HTML (built from escaped parts): ``table`` and ``cards`` insert it as is."""

    html: str

    def __str__(self) -> str:
        return self.html


def esc(value: Any) -> str:
    """``value`` as text that cannot open a tag or leave an attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def cell(value: Any) -> str:
    return value.html if isinstance(value, Raw) else esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = (),
          table_id: Optional[str] = None, row_attrs: Optional[Sequence[dict[str, str]]] = None,
          css: str = "") -> str:
    """A table; columns in ``numeric`` are right-aligned; ``row_attrs`` are data-* attributes per row."""
    num = set(numeric)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f'<th{" class=num" if i in num else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        attrs = "".join(f' data-{k}="{esc(v)}"' for k, v in (row_attrs[r] if row_attrs else {}).items())
        cells = "".join(f'<td{" class=num" if i in num else ""}>{cell(v)}</td>' for i, v in enumerate(row))
        body.append(f"<tr{attrs}>{cells}</tr>")
    return (f'<table class="{esc(css)}"{ident}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def key_values(pairs: Iterable[tuple[str, Any]], css: str = "kv") -> str:
    """A two-column table of labels and values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{cell(v)}</td></tr>" for k, v in pairs)
    return f'<table class="{esc(css)}"><tbody>{rows}</tbody></table>'


def cards(items: Iterable[tuple[str, Any, str]]) -> str:
    """Stat cards: (label, value, note) each."""
    out = []
    for label, value, note in items:
        out.append(f'<div class="card"><div class="card-value">{cell(value)}</div>'
                   f'<div class="card-label">{esc(label)}</div>'
                   + (f'<div class="card-note">{cell(note)}</div>' if note else "") + "</div>")
    return f'<div class="cards">{"".join(out)}</div>'


def section(title: str, body: str, section_id: str = "", note: str = "") -> str:
    ident = f' id="{esc(section_id)}"' if section_id else ""
    sub = f'<p class="note">{cell(note)}</p>' if note else ""
    return f'<section{ident}><h2>{esc(title)}</h2>{sub}{body}</section>'


def missing(text: str) -> str:
    """A line saying what the page cannot show and why (an older run folder, a run stopped early)."""
    return f'<p class="missing">{esc(text)}</p>'


def page(title: str, body: str, subtitle: str = "") -> str:
    sub = f'<p class="subtitle">{cell(subtitle)}</p>' if subtitle else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{CSS}</style></head>'
            f'<body><main><header><h1>{esc(title)}</h1>{sub}</header>{body}'
            f'<footer>Written by mlxsft report · one self-contained file, no network needed</footer>'
            f'</main><script>{SCRIPT}</script></body></html>')


CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1f2328;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue","Noto Sans","Liberation Sans",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:22px 28px 40px}
header h1{font-size:22px;margin:0 0 2px;font-weight:650;letter-spacing:-.01em}
.subtitle{margin:0 0 16px;color:#59636e}
section{background:#fff;border:1px solid #dfe3e8;border-radius:10px;padding:16px 22px 18px;margin:0 0 18px}
h2{font-size:17px;margin:0 0 10px;font-weight:650}
h3{font-size:13.5px;margin:0 0 4px;font-weight:600;color:#24292f}
h4{font-size:13px;margin:14px 0 6px;font-weight:600;color:#424a53}
.note{margin:-4px 0 12px;color:#59636e;font-size:13px}
.missing{margin:6px 0;padding:8px 12px;background:#fff8e6;border-left:3px solid #d4a72c;color:#5c4813;font-size:13px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
pre{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:6px;padding:10px 12px;overflow-x:auto;margin:6px 0}
.grid2{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px 22px}
.grid3{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px 22px}
@media (max-width:900px){.grid2,.grid3{grid-template-columns:1fr}}
figure{margin:0}
svg.chart{width:100%;height:auto;display:block}
svg .plot{fill:#fff;stroke:#d0d7de}
svg .grid{stroke:#eef1f4}
svg .tick{font-size:11px;fill:#59636e}
svg .axis-label{font-size:12px;fill:#424a53}
svg .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg .ref{stroke:#6e7781;stroke-dasharray:4 4}
svg .ref-label,svg .limit-label{font-size:11px;fill:#6e7781}
svg .limit{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:5 4}
svg .limit-label{fill:#cf222e}
svg .bar-label{font-size:12px;fill:#24292f}
svg .bar-value{font-size:11.5px;fill:#424a53}
.chart-empty{height:120px;display:flex;align-items:center;justify-content:center;color:#8c959f;
background:#fafbfc;border:1px dashed #d0d7de;border-radius:6px;font-size:13px}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px;color:#424a53;margin:0 0 2px}
.legend span{display:inline-flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:18px;height:0;border-top:2.5px solid}
.swatch.dashed{border-top-style:dashed}
.legend.runs{font-size:13px;margin:0 0 12px;gap:4px 20px}.legend.runs .swatch{border-top-width:4px}
table.summary td:first-child{white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(118px,1fr));gap:8px;margin:0 0 12px}
.card{border:1px solid #e3e6ea;border-radius:8px;padding:8px 12px;background:#fbfcfd}
.card-value{font-size:19px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.card-label{font-size:12px;color:#59636e}
.card-note{font-size:11.5px;color:#8c959f}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 8px}
th,td{padding:5px 8px;border-bottom:1px solid #eef1f4;text-align:left;vertical-align:top}
thead th{font-weight:600;color:#424a53;border-bottom:1px solid #d0d7de;background:#fafbfc;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:38%;font-weight:500;color:#59636e}
table.kv td{word-break:break-word}
table.questions td{max-width:330px;word-break:break-word}
.scroll{max-height:760px;overflow:auto;border:1px solid #eef1f4;border-radius:6px}
.scroll table{margin:0}.scroll thead th{position:sticky;top:0;z-index:1}
table.commands th{width:30%}table.commands code{white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap}
.b-regression{background:#ffebe9;color:#a40e26}.b-win{background:#dafbe1;color:#116329}
.b-unchanged{background:#eef1f4;color:#424a53}.b-open{background:#ddf4ff;color:#0550ae}
.v-right{color:#1a7f37;font-weight:700}.v-partial{color:#9a6700;font-weight:700}.v-wrong{color:#cf222e;font-weight:700}
.cut{color:#8c959f;font-size:11.5px}
.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:8px 0;font-size:13px}
.filters select{font:inherit;padding:2px 6px;border:1px solid #d0d7de;border-radius:6px;background:#fff}
.tokens{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px;
white-space:pre-wrap;word-break:break-word;background:#fafbfc;border:1px solid #e3e6ea;border-radius:6px;
padding:8px 10px;margin:4px 0 10px;line-height:1.6}
.tok-sup{background:#dafbe1;color:#0f5323;font-weight:600;border-radius:2px}
.tok-ctx{color:#8c959f}
.tok-cut{text-decoration:line-through;opacity:.6}
.tok-scissors{color:#cf222e;font-weight:700}
details{margin:6px 0}
summary{cursor:pointer;font-weight:600;color:#24292f}
.run-dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:0}
footer{color:#8c959f;font-size:12px;text-align:center;margin-top:8px}
""".replace("\n", "")

# the question filter: a row is shown when it matches every select of its filter box
SCRIPT = """
document.querySelectorAll('.filters[data-table]').forEach(function (box) {
  var table = document.getElementById(box.getAttribute('data-table'));
  var selects = box.querySelectorAll('select');
  function apply() {
    var shown = 0;
    table.querySelectorAll('tbody tr').forEach(function (tr) {
      var ok = true;
      selects.forEach(function (s) { if (s.value && tr.getAttribute('data-' + s.name) !== s.value) ok = false; });
      tr.hidden = !ok;
      if (ok) shown++;
    });
    box.querySelector('.shown').textContent = shown;
  }
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  apply();
});
"""


def per_run(runs: list, body: Callable[[Any], str]) -> str:
    """Each run's block of a section, under a heading with its colour when the page shows several runs."""
    parts = []
    for run in runs:
        head = f'<h3><i class="run-dot" style="background:{run.color}"></i>{esc(run.label)}</h3>' \
            if len(runs) > 1 else ""
        parts.append(head + body(run))
    return "".join(parts)
