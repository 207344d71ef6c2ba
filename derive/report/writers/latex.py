r"""LaTeX writer: ``report.tex`` (article, amsmath) for ``pdflatex``, and :func:`compile_pdf`.

Formulas are the printer's LaTeX as they are; text is escaped, and the Unicode that
prose uses for mathematics (σ, ², ₁, ′, ↦, ...) becomes the LaTeX for it.

>>> escape_text("q ↦ q + σ_b², 50% & more")
'q \\ensuremath{\\mapsto} q + \\ensuremath{\\sigma}\\_b\\ensuremath{^{2}}, 50\\% \\& more'
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
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
    Table,
    number,
    plain,
)
from derive.report.writers import FORMATS, figure_href

COMPILER = "pdflatex"
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_SYMBOLS = {"′": "'", "″": "''", "↦": r"\mapsto", "→": r"\to", "←": r"\leftarrow", "≠": r"\neq",
            "≤": r"\leq", "≥": r"\geq", "±": r"\pm", "∓": r"\mp", "≈": r"\approx", "∼": r"\sim",
            "−": "-", "×": r"\times", "·": r"\cdot", "∞": r"\infty", "∫": r"\int", "∂": r"\partial",
            "∇": r"\nabla", "√": r"\surd", "∈": r"\in", "∑": r"\sum", "∏": r"\prod", "‖": r"\|",
            "⟨": r"\langle", "⟩": r"\rangle", "𝔼": r"\mathbb{E}", "ℓ": r"\ell", "ϕ": r"\phi",
            "⁺": "^{+}", "⁻": "^{-}", "₊": "_{+}", "₋": "_{-}", "ˆ": r"\hat{}", "∘": r"\circ",
            "ᵀ": r"^{\top}", "⋯": r"\cdots"}
_TEXT = {"—": "---", "–": "--", "…": r"\ldots{}", "“": "``", "”": "''", "‘": "`", "’": "'", "\u00a0": "~"}
_GREEK_CAPITALS = {"GAMMA", "DELTA", "THETA", "LAMDA", "XI", "PI", "SIGMA", "UPSILON", "PHI", "PSI", "OMEGA"}
_DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def _unicode(ch: str) -> str:
    """LaTeX for a non-ASCII character of prose; Latin letters pass through (inputenc)."""
    if ch in _TEXT:
        return _TEXT[ch]
    if ch in _SYMBOLS:
        return rf"\ensuremath{{{_SYMBOLS[ch]}}}"
    name = unicodedata.name(ch, "")
    words = name.split()
    if name.startswith("GREEK SMALL LETTER ") and len(words) == 4:
        letter = {"LAMDA": "lambda", "FINAL": "varsigma"}.get(words[3], words[3].lower())
        return rf"\ensuremath{{\{letter}}}"
    if name.startswith("GREEK CAPITAL LETTER ") and words[3] in _GREEK_CAPITALS:
        letter = "Lambda" if words[3] == "LAMDA" else words[3].capitalize()
        return rf"\ensuremath{{\{letter}}}"
    if words[:1] in (["SUPERSCRIPT"], ["SUBSCRIPT"]) and words[-1] in _DIGITS:
        mark = "^" if words[0] == "SUPERSCRIPT" else "_"
        return rf"\ensuremath{{{mark}{{{_DIGITS.index(words[-1])}}}}}"
    if name.startswith("LATIN") and ord(ch) < 0x180:
        return ch
    raise ReportError(f"the LaTeX writer has no rendering of {ch!r} ({name or hex(ord(ch))}); "
                      "add it to _SYMBOLS in derive/report/writers/latex.py")


def escape_text(s: str) -> str:
    """Text as LaTeX: special characters escaped, mathematical Unicode as math."""
    return "".join(_SPECIAL.get(ch, ch) if ord(ch) < 128 else _unicode(ch) for ch in s)


def inline(pieces: Inline) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, Math):
            out.append(f"${piece.latex}$")
        elif isinstance(piece, Code):
            out.append(rf"\texttt{{{escape_text(piece.source)}}}")
        else:
            out.append(escape_text(piece))
    return "".join(out)


def _longtable(columns: str, header, rows) -> str:
    head = " & ".join(rf"\textbf{{{h}}}" for h in header)
    body = "\n".join(" & ".join(row) + r" \\" for row in rows)
    return (f"\\begin{{longtable}}{{{columns}}}\n\\toprule\n{head} \\\\\n\\midrule\n\\endhead\n"
            f"{body}\n\\bottomrule\n\\end{{longtable}}")


def _checks(block: Checks) -> str:
    rows = []
    for check in block.checks:
        status = r"\textcolor{passgreen}{pass}" if check.passed else r"\textcolor{red}{\textbf{FAIL}}"
        rows.append((status, inline(check.name), f"${number(check.error).latex}$",
                     f"${number(check.tolerance, 1).latex}$"))
    return _longtable(_columns((0.07, 0.58)) + "ll", ("status", "check", "error", "tolerance"), rows)


def _columns(widths) -> str:
    return "".join(rf">{{\raggedright\arraybackslash}}p{{{w:.3f}\linewidth}}" for w in widths)


def _table(block: Table) -> str:
    """Columns as wide as their longest cell asks (each at least an eighth), 92% of the line."""
    columns = zip(block.header, *block.rows, strict=True)
    longest = [max(len(plain(cell)) for cell in column) for column in columns]
    weights = [max(w, sum(longest) / 8) for w in longest]
    return _longtable(_columns(0.92 * w / sum(weights) for w in weights), [inline(h) for h in block.header],
                      [[inline(c) for c in row] for row in block.rows])


_SECTIONING = {2: "section", 3: "subsection", 4: "subsubsection"}


def _block(block, out: Path) -> str:
    if isinstance(block, Heading):
        bookmark = escape_text("".join(p for p in block.text if isinstance(p, str)).strip(" :"))
        title = rf"\texorpdfstring{{{inline(block.text)}}}{{{bookmark}}}"
        return rf"\{_SECTIONING.get(block.level, 'paragraph')}{{{title}}}"
    if isinstance(block, Paragraph):
        return inline(block.text)
    if isinstance(block, Equation):
        return f"\\begin{{equation*}}\n{block.math.latex}\n\\end{{equation*}}"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        graphic = rf"\includegraphics[width={block.width:.2f}in]{{{figure_href(block, out)}}}"
        return f"\\begin{{center}}\n{graphic}\n\\par\\small\\emph{{{inline(block.caption)}}}\n\\end{{center}}"
    if isinstance(block, Listing):
        return f"\\begin{{verbatim}}\n{block.source.strip()}\n\\end{{verbatim}}"
    if isinstance(block, Checks):
        return _checks(block)
    raise TypeError(f"not a report block: {block!r}")


PREAMBLE = r"""\documentclass[10pt,a4paper]{article}
\usepackage[utf8]{inputenc}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{array,longtable,booktabs}
\usepackage{xcolor}
\usepackage[hidelinks]{hyperref}
\definecolor{passgreen}{rgb}{0.04,0.42,0.17}
\allowdisplaybreaks
\setlength{\emergencystretch}{3em}
"""


def write(document: Document, out: Path) -> Path:
    """Write ``out/report.tex``."""
    summary = f"Every formula below was derived by derive and checked numerically: {document.summary()}."
    parts = [PREAMBLE, rf"\title{{{escape_text(document.title)}}}", r"\author{}", r"\date{}",
             r"\begin{document}", r"\maketitle", escape_text(summary), r"\tableofcontents"]
    for section in document.sections:
        parts.append(rf"\section{{{escape_text(section.title)}}}")
        parts.extend(_block(b, out) for b in section.blocks)
    parts.append(r"\end{document}")
    path = Path(out) / FORMATS["tex"][1]
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def compiler() -> str | None:
    """The path of ``pdflatex``, or None when no LaTeX compiler is installed."""
    return shutil.which(COMPILER)


def compile_pdf(tex: Path, timeout: float = 300) -> Path:
    """Run ``pdflatex`` on `tex` (twice, for the table of contents); the PDF beside it."""
    exe = compiler()
    if exe is None:
        raise ReportError(f"--pdf needs {COMPILER}, which is not installed: install TeX Live "
                          "(Debian: apt-get install texlive-latex-extra) or leave out --pdf")
    tex = Path(tex)
    for _ in range(2):
        proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", tex.name], cwd=tex.parent,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
        if proc.returncode != 0:
            errors = re.findall(r"^! .*$", proc.stdout, re.M)[:3]
            raise ReportError(f"{COMPILER} failed on {tex}: {'; '.join(errors) or 'see the log'} "
                              f"(log: {tex.with_suffix('.log')})")
    return tex.with_suffix(".pdf")
