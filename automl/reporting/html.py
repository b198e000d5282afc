"""The HTML kit both report pages share: one stylesheet, escaping, number formatting, tables and
matplotlib figures inlined as PNG data URIs (a page is one file: no script, no network)."""
from __future__ import annotations

import base64
import html
import io
import math
import numbers
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top} th{background:#f4f4f4} tr.chosen td{background:#eef7ee}
.kpi{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.3em;min-width:9em}
.kpi b{display:block;font-size:1.3em} .warn{color:#8a5a00} .muted{color:#777;font-size:.85em}
.grid{display:flex;flex-wrap:wrap;gap:1em} .grid figure{margin:0} img{max-width:100%;height:auto}
.scroll{overflow-x:auto} nav a{margin-right:1em}
summary{cursor:pointer;color:#555;font-size:.9em}
"""


def esc(v: Any) -> str:
    return html.escape(str(v))


def fmt(v: Any) -> str:
    """A cell's text: five significant digits for floats, nothing for a missing or infinite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):  # float and numpy floats
        return f"{v:.5g}"
    return str(v)


def table(df: pd.DataFrame, highlight: Any = None, key: str = "") -> str:
    """An HTML table of `df`; the row whose `key` column equals `highlight` is marked as the chosen one."""
    import pandas as pd  # deferred: the sweep callback imports this kit in every run's start-up

    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="chosen"' if key and highlight is not None and str(r[key]) == str(highlight) else ""
        cells = "".join(f"<td>{esc(fmt(r[c]) if not pd.isna(r[c]) else '')[:160]}</td>" for c in df.columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class=scroll><table><tr>{head}</tr>{''.join(body)}</table></div>"


def page(title: str, body: str) -> str:
    """A whole self-contained page; `title` is inserted as given (escape it first)."""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title><style>{CSS}</style>"
            f"</head><body>{body}</body></html>\n")


class Figures:
    """matplotlib (Agg) figures as inline PNG <img> tags."""
    def __init__(self) -> None:
        import matplotlib  # deferred: ~0.5 s of import, and a tables-only page never needs it

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt

    def new(self, w: float = 5.0, h: float = 3.4) -> Any:
        return self.plt.subplots(figsize=(w, h), dpi=90)

    def img(self, fig: Any, alt: str) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        self.plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>'
