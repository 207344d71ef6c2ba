"""Writers of the report: one module per format, each ``write(document, out) -> Path``.

Every writer renders the same :class:`~derive.report.document.Document` (the sections
build it once); figures are PNGs the sections already wrote into ``out/figures``.

>>> sorted(FORMATS)
['html', 'ipynb', 'md', 'tex']
>>> writer("md").__module__
'derive.report.writers.markdown'
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from derive.report.document import Document, Figure

#: format name -> (writer module, file it writes)
FORMATS = {
    "html": ("html", "report.html"),
    "md": ("markdown", "report.md"),
    "ipynb": ("notebook", "report.ipynb"),
    "tex": ("latex", "report.tex"),
}


def writer(fmt: str) -> Callable[[Document, Path], Path]:
    """The ``write`` function of format `fmt` (a key of :data:`FORMATS`)."""
    return import_module(f"derive.report.writers.{FORMATS[fmt][0]}").write


def figure_href(figure: Figure, out: Path) -> str:
    """The figure's path relative to the report folder `out`, with forward slashes."""
    path, base = figure.path.resolve(), Path(out).resolve()
    return (path.relative_to(base) if path.is_relative_to(base) else path).as_posix()
