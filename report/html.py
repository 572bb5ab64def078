"""The one HTML renderer of every Eco-Pulse report page: ``python -m report`` and the what-if replay
(``python -m rebalancer simulate``) both write self-contained pages (inline CSS and SVG, no script,
nothing fetched) through these functions, so the two look alike and escape alike."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}tr.total td{font-weight:bold;border-top:2px solid #666}
.note{color:#8a5a00}code{font-size:90%}"""

escape = html.escape


def svg(figure: Any) -> str:  # a matplotlib Figure
    """The figure as inline SVG, without the XML prologue and without a date (same input, same bytes)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.find("<svg") :]


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, total: Sequence[object] = ()) -> str:
    """A table of escaped cells; ``total`` (when given) is the last row, in bold."""

    def line(cells: Sequence[object], cls: str = "") -> str:
        attr = f' class="{cls}"' if cls else ""
        return f"<tr{attr}>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = [line(r) for r in rows]
    if total:
        body.append(line(total, "total"))
    return f"<table><tr>{head}</tr>\n" + "\n".join(body) + "\n</table>"


def figures(drawn: Sequence[tuple[str, str]]) -> str:
    """(title, inline SVG) pairs as sections."""
    return "".join(f"<h2>{escape(title)}</h2>\n<div>{svg_text}</div>\n" for title, svg_text in drawn)


def page(*, title: str, body: str) -> str:
    """A whole page; ``body`` is HTML already escaped by its builder."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style>
</head><body>
<h1>{escape(title)}</h1>
{body}</body></html>
"""
