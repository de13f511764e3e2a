"""The report as one self-contained HTML page: styles and pictures inline (one request, works offline),
a viewport for phones, tables that scroll on their own, figures that stack on narrow screens.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from losslab.report.document import (
    Block,
    Figure,
    Grid,
    TableView,
    all_zero_columns,
    comparison_numbers,
    format_cell,
)
from losslab.report.stats import Comparison

__all__ = ["CSS", "render_html"]

CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;overflow-wrap:anywhere}
main{max-width:1240px;margin:0 auto;padding:.5em 1em 3em}
h1{font-size:1.6em;margin:.6em 0 .2em}h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
.summary{background:#f3f6fb;border-left:4px solid #3b6fc4;padding:.4em 1em;margin:.8em 0}
.summary ul{padding-left:1.1em}.summary li{margin:.25em 0}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0}
table{border-collapse:collapse;font-size:13px;overflow-wrap:normal}
td,th{border:1px solid #d4d4d4;padding:3px 6px;vertical-align:top}
th{background:#f0f0f0;text-align:left;font-weight:600}
th.num,td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.label,table.nowrap td,td.flags{white-space:nowrap}
.zero{color:#aaa}
td.vs{min-width:13em}.vs .d{color:#555;font-size:12px;white-space:nowrap}
.better{color:#17702d}.worse{color:#a32020}
.flag{display:inline-block;background:#fbe3c0;color:#6b3b00;border-radius:3px;padding:0 5px;margin:1px 2px;
white-space:nowrap;font-size:12px}
.note{color:#555;font-size:13px;max-width:60em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre;font-size:13px}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,540px),1fr));gap:1.2em}
figure{margin:0}figure.wide{grid-column:1/-1}img{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#444;margin-top:.3em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _results(view: TableView) -> str:
    table = view.table
    zero = all_zero_columns(table)
    k = view.split

    def num(j: int) -> str:
        return "num zero" if j in zero else "num"

    extra = ([f"<th>vs {_e(view.baseline)}</th>"] if view.show_comparisons else []) + (
        ["<th>flags</th>"] if view.show_flags else []
    )
    heads = [f"<th class='{num(j)}'>{_e(c)}</th>" for j, c in enumerate(table.columns)]
    body = []
    for label, cells in table.rows:
        tds = []
        for j, cell in enumerate(cells):
            text = _e(format_cell(cell, bold=""))
            tds.append(f"<td class='{num(j)}'>{f'<b>{text}</b>' if cell is not None and cell.bold else text}</td>")
        added = []
        if view.show_comparisons:
            added.append(_verdict_cell(table.comparisons.get(label)))
        if view.show_flags:
            spans = [
                f"<span class='flag' title='{_e(f.detail)}'>{_e(f.name)}</span>" for f in view.flags.get(label, [])
            ]
            added.append(f"<td class='flags'>{''.join(spans)}</td>")
        body.append(f"<tr><td class='label'>{_e(label)}</td>{''.join(tds[:k] + added + tds[k:])}</tr>")
    head = "<th>configuration</th>" + "".join(heads[:k] + extra + heads[k:])
    note = f"<p class='note'>{_e(view.note)}</p>" if view.note else ""
    return (
        f"<div class='scroll'><table class='results'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def _verdict_cell(cmp: Comparison | None) -> str:
    if cmp is None:
        return "<td class='vs'></td>"
    verdict = f"<b class='{cmp.verdict.split()[0]}'>{_e(cmp.verdict)}</b>"
    return f"<td class='vs'>{verdict}<br><span class='d'>{_e(comparison_numbers(cmp))}</span></td>"


def _grid(grid: Grid) -> str:
    def cls(j: int) -> str:
        return " class='num'" if j in grid.numeric else ""

    head = "".join(f"<th{cls(j)}>{_e(h)}</th>" for j, h in enumerate(grid.header))
    rows = []
    for i, row in enumerate(grid.rows):
        cells = []
        for j, text in enumerate(row):
            inner = f"<a href='{_e(grid.links[(i, j)])}'>{_e(text)}</a>" if (i, j) in grid.links else _e(text)
            cells.append(f"<td{cls(j)}>{inner}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = "<table class='nowrap'>" if grid.nowrap else "<table>"
    return f"<div class='scroll'>{table}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.size
    except (ImportError, OSError):
        return None


def _figure(fig: Figure, wide: bool) -> str:
    mime = "image/jpeg" if fig.path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    data = base64.b64encode(fig.path.read_bytes()).decode()
    size = _image_size(fig.path)
    dims = f" width='{size[0]}' height='{size[1]}'" if size else ""
    return (
        f"<figure{' class=wide' if wide else ''}><img alt='{_e(fig.path.stem)}'{dims} src='data:{mime};base64,{data}'>"
        f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
    )


def _figures(figures: Sequence[Figure]) -> str:
    # A picture wider than one column (the sample grid, the loss catalogue) spans the row.
    parts = [_figure(f, wide=(_image_size(f.path) or (0, 0))[0] > 780) for f in figures]
    return f"<div class='figs'>{''.join(parts)}</div>"


def _block(b: Block) -> str:
    anchor = f" id='{_e(b.anchor)}'" if b.anchor else ""
    if b.kind in ("h1", "h2"):
        return f"<{b.kind}{anchor}>{_e(b.content)}</{b.kind}>"
    if b.kind == "p":
        return f"<p{anchor}>{_e(b.content)}</p>"
    if b.kind in ("list", "summary"):
        items = "".join(f"<li>{_e(i)}</li>" for i in b.content)
        return f"<div class='summary'{anchor}><ul>{items}</ul></div>" if b.kind == "summary" else f"<ul>{items}</ul>"
    if b.kind == "results":
        return _results(b.content)
    if b.kind == "grid":
        return _grid(b.content)
    if b.kind == "figures":
        return _figures(b.content)
    if b.kind == "pre":
        return f"<pre{anchor}>{_e(b.content)}</pre>"
    raise ValueError(f"unknown report block kind {b.kind!r}")


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The whole page: ``<!DOCTYPE html>`` ... with every picture embedded."""
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
    )
    return head + "\n".join(_block(b) for b in blocks) + "</main></body></html>\n"
