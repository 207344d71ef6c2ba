r"""The report's document model: what a section says, independent of how it is written.

A :class:`Section` is a title and a sequence of blocks; the writers in
:mod:`derive.report.writers` turn the same sections into HTML (MathML), Markdown,
a notebook and LaTeX.  Blocks:

- :class:`Heading` -- a sub-heading (level 3) inside a section;
- :class:`Paragraph` -- running text with inline math and inline code;
- :class:`Equation` -- display math;
- :class:`Table` -- a header row and rows whose cells are inline text (so may be math);
- :class:`Figure` -- a PNG written into the report's ``figures/`` folder, with a caption;
- :class:`Listing` -- Python that reproduces a result (a code cell in the notebook);
- :class:`Checks` -- numeric verifications, each with a status, placed beside what they verify.

Inline text is a tuple of pieces: ``str`` (text), :class:`Math` and :class:`Code`.  Build it
with :func:`text`, which passes strings through as text and prints every other object
(a SymPy expression, a `derive` result, a number) with :func:`derive.printing.latex`, so
every formula in the report comes from the one printer:

>>> from derive.symbols import sigma_w2, chi1
>>> import sympy as sp
>>> text("critical ", sigma_w2, " where ", sp.Eq(chi1, 1))
('critical ', Math(latex='\\sigma_w^2'), ' where ', Math(latex='\\chi_1 = 1'))
>>> Paragraph("plain text only").text
('plain text only',)
>>> check = Check(text("error of ", sigma_w2), error=1e-31, tolerance=1e-25)
>>> check.passed, plain(check.name)
(True, 'error of $\\sigma_w^2$')
>>> number(1.49e-154).latex, number(6e-12, 1).latex, number(2.81).latex
('1.49 \\cdot 10^{-154}', '6.0 \\cdot 10^{-12}', '2.81')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sympy as sp


@dataclass(frozen=True)
class Math:
    """A formula as LaTeX produced by :func:`derive.printing.latex` (build it with :func:`math`)."""

    latex: str


@dataclass(frozen=True)
class Code:
    """Inline code (a Python expression or a name), shown in a fixed-width font."""

    source: str


Piece = str | Math | Code
Inline = tuple[Piece, ...]


def math(obj) -> Math:
    """`obj` (a SymPy expression, a `derive` result object, a number) as a formula, via the printer."""
    from derive.printing import latex

    return Math(latex(obj))


def text(*parts) -> Inline:
    """Inline text: strings stay text, :class:`Math`/:class:`Code` stay as they are, and any
    other object becomes a formula through :func:`math`.  A tuple is spliced in."""
    pieces: list[Piece] = []
    for part in parts:
        if isinstance(part, tuple):
            pieces.extend(text(*part))
        elif isinstance(part, str | Math | Code):
            pieces.append(part)
        else:
            pieces.append(math(part))
    return tuple(pieces)


def plain(inline: Inline) -> str:
    """One line of plain text (formulas as ``$…$`` LaTeX), for the terminal."""
    out = []
    for piece in inline:
        if isinstance(piece, Math):
            out.append(f"${piece.latex}$")
        elif isinstance(piece, Code):
            out.append(piece.source)
        else:
            out.append(piece)
    return "".join(out)


def number(value: float, digits: int = 3) -> Math:
    """A float as a formula with `digits` significant digits (``1.49 \\cdot 10^{-154}``), by the printer."""
    return math(sp.Float(float(value), digits))


def _inline(value) -> Inline:
    return text(value) if not isinstance(value, tuple) else text(*value)


@dataclass(frozen=True)
class Check:
    """One numeric verification: a measured error against the tolerance it must meet.
    `name` is inline text (a string, or a tuple of text and formulas, see :func:`text`)."""

    name: Inline
    error: float
    tolerance: float

    def __post_init__(self):
        object.__setattr__(self, "name", _inline(self.name))

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)  # NaN fails


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section (the section's own title is level 2)."""

    text: Inline
    level: int = 3

    def __post_init__(self):
        object.__setattr__(self, "text", _inline(self.text))


@dataclass(frozen=True)
class Paragraph:
    """Running text: a string, or a tuple of text, formulas and code (see :func:`text`)."""

    text: Inline

    def __post_init__(self):
        object.__setattr__(self, "text", _inline(self.text))


@dataclass(frozen=True)
class Equation:
    """Display math (one formula, or an ``aligned`` block of several)."""

    math: Math

    def __post_init__(self):
        if not isinstance(self.math, Math):
            object.__setattr__(self, "math", math(self.math))


@dataclass(frozen=True)
class Table:
    """A table: a header row and rows of cells, each cell inline text (so may be math)."""

    header: tuple[Inline, ...]
    rows: tuple[tuple[Inline, ...], ...]

    def __post_init__(self):
        object.__setattr__(self, "header", tuple(_inline(h) for h in self.header))
        rows = tuple(tuple(_inline(cell) for cell in row) for row in self.rows)
        for row in rows:
            if len(row) != len(self.header):
                raise ValueError(f"table row of {len(row)} cells under a header of {len(self.header)}")
        object.__setattr__(self, "rows", rows)


@dataclass(frozen=True)
class Figure:
    """A PNG figure at `path` (inside the report's figures folder) printed `width` inches wide."""

    path: Path
    caption: Inline
    width: float

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "caption", _inline(self.caption))


@dataclass(frozen=True)
class Listing:
    """Python source that reproduces a result; self-contained (its own imports), since the
    notebook runs it as a code cell."""

    source: str


@dataclass(frozen=True)
class Checks:
    """Numeric verifications of what precedes them, shown as a table with each status."""

    checks: tuple[Check, ...]

    def __post_init__(self):
        object.__setattr__(self, "checks", tuple(self.checks))


Block = Heading | Paragraph | Equation | Table | Figure | Listing | Checks


@dataclass(frozen=True)
class Section:
    """A titled part of the report: its blocks, in order.  `code` is the Python that
    rebuilds it (set by :func:`derive.report.build_section`; the notebook runs it)."""

    title: str
    blocks: tuple[Block, ...]
    code: str = ""

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))

    @property
    def checks(self) -> tuple[Check, ...]:
        """Every check of the section, in order."""
        return tuple(c for block in self.blocks if isinstance(block, Checks) for c in block.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def figures(self) -> tuple[Figure, ...]:
        return tuple(block for block in self.blocks if isinstance(block, Figure))


@dataclass(frozen=True)
class Document:
    """The whole report: a title and its sections."""

    title: str
    sections: tuple[Section, ...]

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(c for s in self.sections for c in s.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        """``"127 of 127 checks passed"``."""
        total = len(self.checks)
        return f"{total - len(self.failures)} of {total} checks passed"
