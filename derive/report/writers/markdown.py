r"""Markdown writer: ``report.md``, formulas as ``$…$``/``$$…$$`` LaTeX, figures beside it.

For renderers with math (JupyterLab, GitHub, pandoc); the notebook writer uses
:func:`block_markdown` for its text cells.

>>> from derive.report.document import Checks, Check, Table, text
>>> from derive.symbols import x
>>> print(block_markdown(Table(("a", "b"), ((text(abs(x)), "x | y"),)), Path(".")))
| a | b |
|---|---|
| $\left\vert {x}\right\vert $ | x \| y |
>>> print(block_markdown(Checks((Check("wrong", 1.0, 1e-12),)), Path(".")))
| status | check | error | tolerance |
|---|---|---|---|
| ❌ **FAIL** | wrong | $1.0$ | $1.0 \cdot 10^{-12}$ |
"""

from __future__ import annotations

from pathlib import Path

from derive.report.document import (
    Checks,
    Code,
    Document,
    Equation,
    Figure,
    Heading,
    Inline,
    Listing,
    Math,
    Paragraph,
    Section,
    Table,
    number,
)
from derive.report.writers import FORMATS, figure_href

VERT = r"\vert "


def inline(pieces: Inline, cell: bool = False) -> str:
    """Inline text; in a table `cell`, ``|`` is escaped (``\\vert`` inside formulas)."""
    out = []
    for piece in pieces:
        if isinstance(piece, Math):
            out.append("$" + (piece.latex.replace("|", VERT) if cell else piece.latex) + "$")
        elif isinstance(piece, Code):
            out.append(f"`{piece.source}`")
        else:
            out.append(piece.replace("|", r"\|") if cell else piece)
    return "".join(out)


def _row(cells) -> str:
    return "| " + " | ".join(inline(c, cell=True) for c in cells) + " |"


def _table(header, rows) -> str:
    return "\n".join([_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)])


def check_rows(checks: Checks):
    """(status, name, error, tolerance) cells of each check."""
    for check in checks.checks:
        status = "✅ pass" if check.passed else "❌ **FAIL**"
        yield (status,), check.name, (number(check.error),), (number(check.tolerance, 1),)


def block_markdown(block, out: Path) -> str:
    """One block as Markdown; figure paths relative to the report folder `out`."""
    if isinstance(block, Heading):
        return f"{'#' * block.level} {inline(block.text)}"
    if isinstance(block, Paragraph):
        return inline(block.text)
    if isinstance(block, Equation):
        return f"$$\n{block.math.latex}\n$$"
    if isinstance(block, Table):
        return _table(block.header, block.rows)
    if isinstance(block, Figure):
        return f"![{block.path.stem}]({figure_href(block, out)})\n\n*{inline(block.caption)}*"
    if isinstance(block, Listing):
        return f"```python\n{block.source.strip()}\n```"
    if isinstance(block, Checks):
        return _table((("status",), ("check",), ("error",), ("tolerance",)), check_rows(block))
    raise TypeError(f"not a report block: {block!r}")


def section_markdown(section: Section, out: Path) -> str:
    blocks = "\n\n".join(block_markdown(b, out) for b in section.blocks)
    return f"## {section.title}\n\n{blocks}\n"


def write(document: Document, out: Path) -> Path:
    """Write ``out/report.md``."""
    lines = [f"# {document.title}", "",
             f"Every formula below was derived by `derive` and checked numerically: {document.summary()}.",
             ""]
    for s in document.sections:
        failed = len(s.failures)
        lines.append(f"- {s.title} ({len(s.checks) - failed} of {len(s.checks)} checks passed)")
    body = "\n".join(section_markdown(s, out) for s in document.sections)
    path = Path(out) / FORMATS["md"][1]
    path.write_text("\n".join(lines) + "\n\n" + body, encoding="utf-8")
    return path
