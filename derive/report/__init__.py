"""`derive report`: every result the tool derives, each formula beside its verification.

The report is a folder: ``report.md`` (Markdown with LaTeX in ``$…$``/``$$…$$``)
and ``figures/*.png``.  Each theory contributes one section module with a
function ``section(figdir) -> Section``; :data:`SECTIONS` lists them in order.
A section's :class:`Check` objects record each numeric verification; the
command exits non-zero if any fails.

>>> Check("E[relu^2] vs mpmath", error=1e-31, tolerance=1e-25).passed
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

SECTIONS = (
    "derive.report.gaussian",
    "derive.report.meanfield",
    "derive.report.kernels",
)


@dataclass(frozen=True)
class Check:
    """One numeric verification: a measured error against the tolerance it must meet."""

    name: str
    error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)  # NaN fails

    def row(self) -> str:
        mark = "pass" if self.passed else "**FAIL**"
        return f"| {self.name} | {self.error:.2e} | {self.tolerance:.0e} | {mark} |"


@dataclass(frozen=True)
class Section:
    """A titled part of the report: Markdown (with LaTeX) and the checks behind it."""

    title: str
    markdown: str
    checks: tuple[Check, ...] = ()

    def render(self) -> str:
        table = "\n".join(["| check | error | tolerance | result |", "|---|---|---|---|",
                           *(check.row() for check in self.checks)])
        return f"## {self.title}\n\n{self.markdown}\n\n### Verification\n\n{table}\n"


@dataclass(frozen=True)
class Report:
    """The written report: where it is, its sections, and whether every check passed."""

    path: Path
    sections: tuple[Section, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for s in self.sections for c in s.checks if not c.passed)


def available_sections() -> list[str]:
    """Section modules that exist in this installation, in report order."""
    from importlib.util import find_spec

    return [name for name in SECTIONS if find_spec(name) is not None]


def write_report(out: Path, progress: Callable[[str], None] = print,
                 only: tuple[str, ...] = ()) -> Report:
    """Build every section (or those named in `only`) into `out`/report.md, figures in `out`/figures."""
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    names = [n for n in available_sections() if not only or n.rsplit(".", 1)[-1] in only]
    sections = []
    for i, name in enumerate(names, 1):
        progress(f"[{i}/{len(names)}] {name.rsplit('.', 1)[-1]} ...")
        start = time.perf_counter()
        section = import_module(name).section(figdir)
        failed = sum(not c.passed for c in section.checks)
        progress(f"      {len(section.checks)} checks, {failed} failed, "
                 f"{time.perf_counter() - start:.1f} s")
        sections.append(section)
    body = "\n".join(s.render() for s in sections)
    total = sum(len(s.checks) for s in sections)
    bad = sum(not c.passed for s in sections for c in s.checks)
    header = ("# derive report\n\nEvery formula below was derived by `derive` and checked "
              f"numerically: {total - bad} of {total} checks passed.\n\n")
    path = out / "report.md"
    path.write_text(header + body, encoding="utf-8")
    return Report(path, tuple(sections))
