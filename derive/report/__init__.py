"""`derive report`: every result the tool derives, each formula beside its verification.

The report is a folder: ``report.html`` (MathML formulas, figures embedded; opens in any
browser, no network), ``report.md``, on request ``report.ipynb`` and ``report.tex`` (and
``report.pdf``), and ``figures/*.png``.  Sections build one document model
(:mod:`derive.report.document`); the writers (:mod:`derive.report.writers`) render it.
The command exits non-zero if any check fails.

Adding a section
----------------
1. Write ``derive/report/NAME.py`` with a function::

       def section(figdir: Path, **options) -> Section

   that computes its results with `derive` and returns ``Section(title, blocks)``, the
   blocks in reading order: :class:`Heading`, :class:`Paragraph`, :class:`Equation`,
   :class:`Table`, :class:`Figure` (draw ``with figures.print_style():`` and return
   ``figures.save(fig, figdir, name, caption)``), :class:`Listing` (code the notebook
   runs) and :class:`Checks` -- each :class:`Check` right after the result it verifies.
   Formulas only through :func:`text` / :func:`math` (the printer,
   :func:`derive.printing.latex`): a check's name, a table cell or a heading with
   mathematics in it is ``text("critical ", sigma_w2, " at ", sp.Eq(sigma_b2, 0))``,
   never LaTeX in a string.  Keyword `options` (each with a default) may make a cheaper
   version for the tests, e.g. fewer activations.
2. Add ``"NAME"`` to :data:`SECTIONS`, in report order.
3. In ``tests/test_report.py`` give the session fixture the section's cheap options
   (``OPTIONS``); the format tests then cover the new section with no new test.

>>> Check("E[relu^2] vs mpmath", error=1e-31, tolerance=1e-25).passed
True
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path

from derive.errors import ReportError
from derive.report.document import (
    Check,
    Checks,
    Code,
    Document,
    Equation,
    Figure,
    Heading,
    Listing,
    Math,
    Paragraph,
    Section,
    Table,
    math,
    plain,
    text,
)

__all__ = ["Check", "Checks", "Code", "Document", "Equation", "Figure", "Heading", "Listing", "Math",
           "Paragraph", "Section", "Table", "math", "plain", "text", "SECTIONS", "DEFAULT_FORMATS",
           "Report", "available_sections", "build_section", "write_report"]

#: section modules ``derive.report.NAME``, in report order
SECTIONS = ("gaussian", "meanfield", "kernels", "freeprob", "fisher", "ngd")
#: what ``derive report`` writes unless told otherwise
DEFAULT_FORMATS = ("html", "md")


@dataclass(frozen=True)
class Report:
    """The written report: its folder, the files written, and the document."""

    path: Path
    files: tuple[Path, ...]
    document: Document

    @property
    def failures(self) -> tuple[Check, ...]:
        return self.document.failures


def available_sections() -> list[str]:
    """Names of the section modules that exist in this installation, in report order."""
    from importlib.util import find_spec

    return [name for name in SECTIONS if find_spec(f"derive.report.{name}") is not None]


def build_section(name: str, figdir: Path, **options) -> Section:
    """Run section `name` into `figdir`; its `code` is the call that rebuilds it (for the notebook)."""
    section = import_module(f"derive.report.{name}").section(Path(figdir), **options)
    arguments = "".join(f", {key}={value!r}" for key, value in options.items())
    code = (f"from IPython.display import Markdown\n\nfrom derive.report import {name}\n"
            f"from derive.report.writers.markdown import section_markdown\n\n"
            f"section = {name}.section(figures{arguments})\n"
            "Markdown(section_markdown(section, figures.parent))")
    return replace(section, code=code)


def _timed(name: str, figdir: Path, options: dict) -> tuple[Section, float]:
    start = time.perf_counter()
    return build_section(name, figdir, **options), time.perf_counter() - start


def _built(names: list[str], figdir: Path, options: dict, progress) -> Iterable[tuple[Section, float]]:
    """(section, seconds) for each name, in order: the sections are independent, so they are built
    in parallel processes, one per core (fresh interpreters: no state shared with the caller)."""
    workers = min(len(names), os.cpu_count() or 1)
    if workers < 2:
        yield from (_timed(name, figdir, options.get(name, {})) for name in names)
        return
    progress(f"building {', '.join(names)} on {workers} processes ...")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:  # the longest are started first
        futures = {name: pool.submit(_timed, name, figdir, options.get(name, {}))
                   for name in sorted(names, key=lambda n: _LONGEST_FIRST.index(n) if n in _LONGEST_FIRST
                                      else len(_LONGEST_FIRST))}
        yield from (futures[name].result() for name in names)


#: the sections by their build time on a 2-core machine (31, 15, 8, 6, 5, 4 s), longest first: two
#: workers then finish together instead of one waiting for the last long section
_LONGEST_FIRST = ("gaussian", "fisher", "freeprob", "meanfield", "ngd", "kernels")


def _selected(only: Iterable[str]) -> list[str]:
    names = available_sections()
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ReportError(f"unknown section {', '.join(map(repr, unknown))}: the sections are "
                          f"{', '.join(names)} (--section NAME, repeatable)")
    return [n for n in names if not only or n in only]


def _formats(formats: Iterable[str], pdf: bool) -> tuple[str, ...]:
    from derive.report.writers import FORMATS
    from derive.report.writers.latex import COMPILER, compiler

    formats = tuple(dict.fromkeys([*formats, *(["tex"] if pdf else [])]))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"unknown format {', '.join(map(repr, unknown)) or '(none given)'}: "
                          f"--format takes a comma-separated list of {', '.join(FORMATS)}")
    if pdf and compiler() is None:
        raise ReportError(f"--pdf needs the LaTeX compiler {COMPILER}, which is not installed here: "
                          "install TeX Live (Debian: apt-get install texlive-latex-extra), or leave out "
                          "--pdf and compile report.tex elsewhere")
    return formats


def _writable(out: Path) -> Path:
    """`out`, created if missing, after proving a file can be written in it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {str(out)!r} is a file, not a folder: give --out a folder (it is "
                          "created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "figures").mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ReportError(f"cannot write the report into {str(out)!r}: {exc.strerror or exc}; "
                          "give --out a folder you can write to") from exc
    return out


def write_report(out: Path, formats: Iterable[str] = DEFAULT_FORMATS, only: Iterable[str] = (),
                 pdf: bool = False, progress: Callable[[str], None] = print,
                 options: dict[str, dict] | None = None) -> Report:
    """Build the sections (all, or those named in `only`) and write them into `out` in each of
    `formats` (keys of :data:`derive.report.writers.FORMATS`), compiling the PDF if `pdf`.
    `options` maps a section name to keyword options of its ``section`` function.  The
    request is checked (sections, formats, compiler, folder) before any work starts."""
    from derive.report.writers import writer
    from derive.report.writers.latex import compile_pdf

    only = tuple(only)
    names = _selected(only)
    formats = _formats(formats, pdf)
    out = _writable(out)
    options = options or {}
    sections = []
    for i, (name, (section, seconds)) in enumerate(zip(names, _built(names, out / "figures", options,
                                                                     progress), strict=True), 1):
        progress(f"[{i}/{len(names)}] {name}: {len(section.checks)} checks, {len(section.failures)} "
                 f"failed, {seconds:.1f} s")
        sections.append(section)
    document = Document("derive report", tuple(sections))
    files = [writer(fmt)(document, out) for fmt in formats]
    if pdf:
        progress(f"compiling {files[formats.index('tex')].name} ...")
        files.append(compile_pdf(files[formats.index("tex")]))
    return Report(out, tuple(files), document)
