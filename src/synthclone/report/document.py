"""A tiny document model rendered to self-contained HTML and to Markdown.

The report is built as a list of blocks (headings, paragraphs, tables, figures); the same blocks
render to ``index.html`` (images inlined as data URIs, no external scripts, fonts or styles, every
user string escaped) and ``report.md`` (images as files beside it).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from .grids import png_data_uri


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    css: str = ""


@dataclass
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    css_cells: Optional[Sequence[Sequence[str]]] = None  # per-cell class names (e.g. verdict colours)


@dataclass
class Figure:
    path: Path  # a PNG inside the report folder
    caption: str = ""


Block = Union[Heading, Paragraph, Table, Figure]


@dataclass
class Document:
    title: str
    blocks: List[Block] = field(default_factory=list)

    def add(self, block: Block) -> "Document":
        self.blocks.append(block)
        return self


_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;padding:0 16px;color:#1d2125;line-height:1.45}
h1{font-size:1.7em;border-bottom:2px solid #ccd;padding-bottom:6px}h2{margin-top:1.8em;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:10px 0 18px;font-size:.9em}th,td{border:1px solid #ccd;padding:4px 8px;text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#eef0f5}caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
figure{display:inline-block;margin:8px 12px 16px 0;vertical-align:top}figure img{max-width:560px;border:1px solid #dde}figcaption{font-size:.85em;color:#444;max-width:560px}
.supported{background:#dff3e2}.contradicted{background:#f8dede}.inconclusive{background:#f4f1dc}.note{color:#555;font-size:.9em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return "" if value is None else str(value)


def to_html(doc: Document) -> str:
    """The whole report as one HTML string with no external references."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(doc.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    for block in doc.blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 2), 4)
            out.append(f"<h{level}>{e(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            cls = f' class="{e(block.css)}"' if block.css else ""
            out.append(f"<p{cls}>{e(block.text)}</p>")
        elif isinstance(block, Table):
            parts = ["<table>"]
            if block.caption:
                parts.append(f"<caption>{e(block.caption)}</caption>")
            parts.append("<thead><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in block.columns) + "</tr></thead><tbody>")
            for i, row in enumerate(block.rows):
                cells = []
                for j, value in enumerate(row):
                    css = block.css_cells[i][j] if block.css_cells else ""
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        css = f"{css} num".strip()
                    cls = f' class="{e(css)}"' if css else ""
                    cells.append(f"<td{cls}>{e(_fmt(value))}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
            out.append("".join(parts))
        elif isinstance(block, Figure):
            out.append(
                f'<figure><img src="{png_data_uri(block.path)}" alt="{e(block.caption)}">'
                f"<figcaption>{e(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out)


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, folder: Path) -> str:
    """Markdown with figures linked relative to ``folder`` (where report.md is written)."""
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * min(max(block.level, 2), 4) + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"**{block.caption}**", ""]
            out.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
            out.append("|" + "---|" * len(block.columns))
            for row in block.rows:
                out.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            out.append("")
        elif isinstance(block, Figure):
            rel = os.path.relpath(block.path, folder)
            out += [f"![{block.caption}]({rel})", f"*{block.caption}*", ""]
    return "\n".join(out)


def write(doc: Document, folder: str | Path, formats=("html", "md")) -> List[Path]:
    """Write the report in each of ``formats`` (``html``: ``index.html``, ``md``: ``report.md``) atomically
    into ``folder``; returns the paths written."""
    from ..paths import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = {"html": ("index.html", to_html), "md": ("report.md", lambda d: to_markdown(d, folder))}
    return [atomic_write_text(folder / writers[f][0], writers[f][1](doc)) for f in formats]
