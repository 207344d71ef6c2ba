r"""HTML writer: one self-contained ``report.html`` -- MathML formulas, embedded figures.

Formulas are converted to MathML (MathML Core, rendered natively by current browsers)
when the report is built, with ``latex2mathml``; figures are embedded as ``data:`` PNGs.
The page needs no JavaScript, no network and no other file.  A table of contents
gives each section's check count, and each check's status is a coloured mark.

>>> m = mathml(Math(r"\sigma_w^2"))
>>> m.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">'), "<msubsup>" in m
(True, True)
>>> "mtable" in mathml(Math(r"\begin{aligned}a &= 1 \\ b &= 2\end{aligned}"), display=True)
True
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from html import escape
from pathlib import Path

from derive.errors import ReportError
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
from derive.report.writers import FORMATS

_ALIGNED = re.compile(r"\\(begin|end)\{aligned\}")
#: \operatorname{acos}, \max, ...: converted to <mo>, which spaces like a binary operator
_NAMED_OPERATOR = re.compile(r"<mo>([A-Za-z]{2,})</mo>")
#: what is left of LaTeX that the converter did not understand: a command name, an alignment &
_LEFTOVER = re.compile(r">[^<]*(\\[A-Za-z]+|&amp;|&(?!#?\w+;))[^<]*</m[ion]>")


@lru_cache(maxsize=4096)
def _convert(latex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    # latex2mathml lays out the `split` environment as a table but not `aligned`; same layout
    source = _ALIGNED.sub(lambda m: f"\\{m.group(1)}{{split}}", latex)
    try:
        result = convert(source, display="block" if display else "inline")
    except Exception as exc:  # latex2mathml's exceptions share no base class
        raise ReportError(f"latex2mathml cannot convert the formula {latex!r}: {exc}") from exc
    result = _NAMED_OPERATOR.sub(r"<mi>\1</mi>", result)
    leftover = _LEFTOVER.search(result)
    if leftover:
        raise ReportError(f"the formula {latex!r} has LaTeX that latex2mathml leaves unconverted "
                          f"({leftover.group(1)!r}); print it with notation MathML supports")
    return result


def mathml(m: Math, display: bool = False) -> str:
    """The formula as a ``<math>`` element."""
    return _convert(m.latex, display)


def inline(pieces: Inline) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, Math):
            out.append(mathml(piece))
        elif isinstance(piece, Code):
            out.append(f"<code>{escape(piece.source)}</code>")
        else:
            out.append(escape(piece))
    return "".join(out)


def _png(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def _checks(block: Checks) -> str:
    rows = []
    for check in block.checks:
        status = ('<td class="status pass">✓ pass</td>' if check.passed
                  else '<td class="status fail">✗ FAIL</td>')
        error, tolerance = mathml(number(check.error)), mathml(number(check.tolerance, 1))
        rows.append(f'<tr class="{"pass" if check.passed else "fail"}">{status}<td>{inline(check.name)}</td>'
                    f"<td>{error}</td><td>{tolerance}</td></tr>")
    return ('<table class="checks"><thead><tr><th>status</th><th>check</th><th>error</th>'
            f'<th>tolerance</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _block(block, anchor: str) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{anchor}">{inline(block.text)}</h{block.level}>'
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Equation):
        return f'<div class="equation">{mathml(block.math, display=True)}</div>'
    if isinstance(block, Table):
        head = "".join(f"<th>{inline(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    if isinstance(block, Figure):
        caption = inline(block.caption)
        return (f'<figure><img src="{_png(block.path)}" alt="{escape(block.path.stem)}" '
                f'style="width: {block.width:.2f}in"><figcaption>{caption}</figcaption></figure>')
    if isinstance(block, Listing):
        return f'<pre class="listing"><code>{escape(block.source.strip())}</code></pre>'
    if isinstance(block, Checks):
        return _checks(block)
    raise TypeError(f"not a report block: {block!r}")


def _badge(section: Section) -> str:
    failed, total = len(section.failures), len(section.checks)
    if failed:
        return f'<span class="badge fail">✗ {failed} of {total} failed</span>'
    return f'<span class="badge pass">✓ {total} of {total}</span>'


def _section(index: int, section: Section) -> tuple[str, str]:
    """The section's HTML and its table-of-contents entry."""
    parts, toc = [], []
    for j, block in enumerate(section.blocks):
        anchor = f"s{index}-{j}"
        parts.append(_block(block, anchor))
        if isinstance(block, Heading):
            toc.append(f'<li><a href="#{anchor}">{inline(block.text)}</a></li>')
    sub = f"<ul>{''.join(toc)}</ul>" if toc else ""
    entry = f'<li><a href="#s{index}">{escape(section.title)}</a> {_badge(section)}{sub}</li>'
    body = (f'<section><h2 id="s{index}">{escape(section.title)} {_badge(section)}</h2>'
            f'{"".join(parts)}</section>')
    return body, entry


CSS = """
body { font-family: "DejaVu Serif", Georgia, serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1a1a1a; }
math { font-family: "Latin Modern Math", "STIX Two Math", "DejaVu Math TeX Gyre", math; font-size: 1.08em; }
table.results math, .equation math { math-style: normal; }
h1, h2, h3 { font-family: "DejaVu Sans", Helvetica, sans-serif; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
nav { background: #f6f6f6; padding: 0.5rem 1.5rem; border-radius: 4px; }
nav ul ul { font-size: 0.9em; columns: 2; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #eee; }
.equation { overflow-x: auto; margin: 0.8rem 0; }
table.results td { overflow-x: auto; max-width: 40rem; }
.status { font-weight: bold; white-space: nowrap; }
tr.pass .status, .badge.pass, .summary.pass { color: #0b6b2b; background: #e3f4e8; }
tr.fail .status, .badge.fail, .summary.fail { color: #a50e0e; background: #fde4e1; }
tr.fail td { background: #fff3f1; }
.badge { font-size: 0.7em; padding: 0.1rem 0.4rem; border-radius: 3px; font-weight: normal;
         white-space: nowrap; }
.summary { padding: 0.5rem 1rem; border-radius: 4px; font-weight: bold; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #444; }
pre.listing { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
"""


def write(document: Document, out: Path) -> Path:
    """Write ``out/report.html``."""
    parts = [_section(i, s) for i, s in enumerate(document.sections, 1)]
    bodies, entries = "".join(p[0] for p in parts), "".join(p[1] for p in parts)
    state = "fail" if document.failures else "pass"
    mark = "✗" if document.failures else "✓"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(document.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(document.title)}</h1>"
        f'<p class="summary {state}">{mark} {document.summary()}: every formula below was derived by '
        "<code>derive</code> and is shown beside its numeric verification.</p>"
        f"<nav><h2>Contents</h2><ul>{entries}</ul></nav>{bodies}</body></html>\n")
    path = Path(out) / FORMATS["html"][1]
    path.write_text(page, encoding="utf-8")
    return path
