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


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def scatter(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 420,
) -> str:
    """A plain SVG scatter plot (no script, no library) of (x, y) points per named series, with the
    axes through zero and the diagonal y = x, so points below it did worse than predicted."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return '<p class="note">No points to plot.</p>'
    pad = 56
    xs = [x for x, _ in points] + [0.0]
    ys = [y for _, y in points] + [0.0]
    low = min(*xs, *ys)
    high = max(*xs, *ys)
    if high - low <= 1e-12:
        high = low + 1.0
    span = high - low
    low, high = low - 0.05 * span, high + 0.05 * span

    def px(x: float) -> float:
        return pad + (x - low) / (high - low) * (width - 2 * pad)

    def py(y: float) -> float:
        return height - pad - (y - low) / (high - low) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" '
        'fill="none" stroke="#999"/>',
        f'<line x1="{px(low):.1f}" y1="{py(low):.1f}" x2="{px(high):.1f}" y2="{py(high):.1f}" '
        'stroke="#bbb" stroke-dasharray="4 3"/>',
        f'<line x1="{px(low):.1f}" y1="{py(0):.1f}" x2="{px(high):.1f}" y2="{py(0):.1f}" stroke="#666"/>',
        f'<line x1="{px(0):.1f}" y1="{py(low):.1f}" x2="{px(0):.1f}" y2="{py(high):.1f}" stroke="#666"/>',
    ]
    for value in (low, 0.0, high):
        parts.append(
            f'<text x="{px(value):.1f}" y="{height - pad + 16}" text-anchor="middle">{value:.3g}</text>'
        )
        parts.append(f'<text x="{pad - 6}" y="{py(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 12}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(
        f'<text x="14" y="{height / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {height / 2:.0f})">{escape(y_label)}</text>'
    )
    for index, (name, pts) in enumerate(series):
        colour = _COLOURS[index % len(_COLOURS)]
        for x, y in pts:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}" fill-opacity="0.55"/>'
            )
        parts.append(
            f'<text x="{pad + 8}" y="{pad + 16 + 14 * index}" fill="{colour}">{escape(name)} '
            f"({len(pts)} moves)</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def percent(value: float) -> str:
    """A saving in percent with one decimal; never ``-0.0 %`` (a rounding of nothing is 0)."""
    rounded = round(value, 1)
    return f"{rounded if rounded != 0 else 0.0:.1f} %"
