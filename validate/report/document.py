"""One document model for every report: blocks rendered to Markdown and to HTML.

Both the run report (``summary.md``, ``index.html``) and the paper report (``README.md``) are
built as a :class:`Document`, a list of blocks (headings, paragraphs, bullet lists, tables,
figures, folded sections), so tables are formatted in one place (:func:`fmt`) and the two
outputs say the same thing. Paragraph text may use the inline Markdown the reports need:
`code`, ``**bold**``, ``*emphasis*`` and ``[text](url)``; HTML output converts them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Row colours of verdict tables in HTML.
VERDICT_COLOURS = {"pass": "#d4f4d4", "fail": "#f8d0d0", "inconclusive": "#f6ecc8"}

CSS = ("body{font-family:sans-serif;max-width:80em;margin:1em auto;padding:0 1em}"
       "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #999;padding:2px 4px}"
       "th{background:#eee}figure{display:inline-block;margin:0.5em;vertical-align:top}"
       "figure img{max-width:100%}figcaption{font-size:12px;color:#333;max-width:60em}"
       "pre{font-size:11px;background:#f6f6f6;padding:0.5em;overflow-x:auto}")


def fmt(x) -> str:
    """A table cell: floats to 4 significant digits, NaN and None empty, one line."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (float, np.floating)):
        return "" if pd.isna(x) else f"{float(x):.4g}"
    return "" if x is None else str(x).replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (columns as header, cells by :func:`fmt`)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(x).replace("|", "\\|") for x in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep] + body)


def html_table(df: pd.DataFrame) -> str:
    """An HTML table of ``df``; rows are coloured by their ``verdict`` column when it exists."""
    cols = list(df.columns)
    rows = []
    for row in df.itertuples(index=False):
        rec = dict(zip(cols, row))
        colour = VERDICT_COLOURS.get(rec.get("verdict"), None)
        style = f' style="background:{colour}"' if colour else ""
        cells = "".join(f"<td>{html.escape(fmt(x))}</td>" for x in row)
        rows.append(f"<tr{style}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


_INLINE = [
    (re.compile(r"\*\*([^*]+)\*\*"), r"<b>\1</b>"),
    (re.compile(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])"), r"<i>\1</i>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
]


def inline_html(text: str) -> str:
    """Escape ``text`` for HTML and convert its inline Markdown (module docstring); the inside
    of a code span is kept literally."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1], quote=False)}</code>")
            continue
        seg = html.escape(part, quote=False)
        for pat, rep in _INLINE:
            seg = pat.sub(rep, seg)
        out.append(seg)
    return "".join(out)


def markdown_html(text: str) -> str:
    """HTML of simple Markdown: ``#`` headings, ``- `` bullets (indented lines continue them),
    paragraphs separated by blank lines, inline markup as in :func:`inline_html`."""
    out, items, para = [], [], []

    def flush():
        if para:
            out.append(f"<p>{inline_html(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        s = line.strip()
        if not s:
            flush()
        elif s.startswith("#"):
            flush()
            level = len(s) - len(s.lstrip("#"))
            out.append(f"<h{level}>{inline_html(s[level:].strip())}</h{level}>")
        elif s.startswith("- "):
            if para:
                flush()
            items.append(s[2:])
        elif items and line.startswith(" "):
            items[-1] += " " + s
        else:
            para.append(s)
    flush()
    return "\n".join(out)


@dataclass(frozen=True)
class Figure:
    """A PNG of the report: ``path`` relative to the report folder, with a caption."""

    path: str
    caption: str = ""


@dataclass
class Document:
    """An ordered list of blocks; :meth:`markdown` and :meth:`html` render the same content."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Document":
        self.blocks.append(("heading", level, text))
        return self

    def para(self, text: str) -> "Document":
        self.blocks.append(("para", text))
        return self

    def bullets(self, items: list[str]) -> "Document":
        if items:
            self.blocks.append(("bullets", list(items)))
        return self

    def table(self, df: pd.DataFrame) -> "Document":
        self.blocks.append(("table", df))
        return self

    def figures(self, figs: list[Figure]) -> "Document":
        if figs:
            self.blocks.append(("figures", list(figs)))
        return self

    def details(self, summary: str, inner: "Document") -> "Document":
        """A folded section (``<details>``) holding the blocks of ``inner``."""
        self.blocks.append(("details", summary, inner))
        return self

    def markdown_text(self, text: str) -> "Document":
        """A passage already written in Markdown (headings ``#``, bullets ``- ``, paragraphs)."""
        self.blocks.append(("md", text.strip()))
        return self

    def preformatted(self, text: str) -> "Document":
        self.blocks.append(("pre", text))
        return self

    # ---- rendering ---------------------------------------------------------------------------
    def markdown(self) -> str:
        return "\n\n".join([f"# {self.title}"] + [_md_block(b) for b in self.blocks]) + "\n"

    def html(self) -> str:
        body = "\n".join(_html_block(b) for b in self.blocks)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                f"</title><style>{CSS}</style></head><body><h1>{inline_html(self.title)}</h1>\n{body}"
                "</body></html>\n")


def _md_block(b: tuple) -> str:
    kind = b[0]
    if kind == "heading":
        return "#" * b[1] + " " + b[2]
    if kind == "para":
        return b[1]
    if kind == "bullets":
        return "\n".join(f"- {item}" for item in b[1])
    if kind == "table":
        return md_table(b[1])
    if kind == "figures":
        return "\n\n".join(f"![{f.caption or f.path}]({f.path})" for f in b[1])
    if kind == "details":
        inner = "\n\n".join(_md_block(x) for x in b[2].blocks)
        return f"<details><summary>{b[1]}</summary>\n\n{inner}\n\n</details>"
    if kind == "pre":
        return "```\n" + b[1] + "\n```"
    if kind == "md":
        return b[1]
    raise ValueError(f"block: unknown kind {kind!r}")


def _html_block(b: tuple) -> str:
    kind = b[0]
    if kind == "heading":
        return f"<h{b[1]}>{inline_html(b[2])}</h{b[1]}>"
    if kind == "para":
        return f"<p>{inline_html(b[1])}</p>"
    if kind == "bullets":
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in b[1]) + "</ul>"
    if kind == "table":
        return html_table(b[1])
    if kind == "figures":
        return "".join(f'<figure><img src="{html.escape(f.path)}" alt="{html.escape(f.caption)}">'
                       f"<figcaption>{inline_html(f.caption)}</figcaption></figure>" for f in b[1])
    if kind == "details":
        inner = "\n".join(_html_block(x) for x in b[2].blocks)
        return f"<details><summary>{inline_html(b[1])}</summary>{inner}</details>"
    if kind == "pre":
        return f"<pre>{html.escape(b[1])}</pre>"
    if kind == "md":
        return markdown_html(b[1])
    raise ValueError(f"block: unknown kind {kind!r}")
