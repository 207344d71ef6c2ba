"""Notebook writer: ``report.ipynb`` (nbformat 4), the report as cells JupyterLab renders.

Text, formulas, tables and figures are Markdown cells (JupyterLab renders their
``$…$`` math); each :class:`~derive.report.document.Listing` is a code cell, and each
section ends with a code cell running the section's ``code``, which rebuilds the section
-- its formulas, figures and checks -- and shows it.  Written without outputs: running the
notebook (in the report folder) is reproducing the report.
"""

from __future__ import annotations

from pathlib import Path

from derive.report.document import Document, Listing
from derive.report.writers import FORMATS
from derive.report.writers.markdown import block_markdown

SETUP = """\
# The report's sections write their figures here, beside this notebook.
from pathlib import Path

figures = Path("figures")
figures.mkdir(exist_ok=True)"""


def write(document: Document, out: Path) -> Path:
    """Write ``out/report.ipynb``."""
    import nbformat
    import nbformat.v4 as nbf

    cells = [nbf.new_markdown_cell(f"# {document.title}\n\nEvery formula below was derived by `derive` and "
                                   f"checked numerically: {document.summary()}.  Each section ends with the "
                                   "code that rebuilds it; run the notebook from the report folder."),
             nbf.new_code_cell(SETUP)]
    for section in document.sections:
        text = [f"## {section.title}"]
        for block in section.blocks:
            if isinstance(block, Listing):
                cells.append(nbf.new_markdown_cell("\n\n".join(text)))
                cells.append(nbf.new_code_cell(block.source.strip()))
                text = []
            else:
                text.append(block_markdown(block, out))
        if text:
            cells.append(nbf.new_markdown_cell("\n\n".join(text)))
        if section.code:
            cells.append(nbf.new_code_cell(f"# rebuild this section: formulas, figures, checks\n"
                                           f"{section.code}"))
    nb = nbf.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    path = Path(out) / FORMATS["ipynb"][1]
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path
