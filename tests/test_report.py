"""`derive report` in every format, built once per session from a cheap subset of each section.

The HTML is parsed (every formula a <math> element, no LaTeX left in text, every figure
embedded) and rendered by headless Chromium; the notebook is executed; the LaTeX is
compiled with pdflatex (installed by .ci/run) and checked structurally everywhere.
"""

import base64
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from derive.report import SECTIONS, write_report
from derive.report.document import Checks, Equation, Figure, Heading, Math, Paragraph, Table
from derive.report.writers.latex import compiler

#: cheap options per section (a new section adds its own here)
OPTIONS = {"gaussian": {"activations": ("relu", "sign", "tanh")},
           "fisher": {"activations": ("relu",), "widths": (128, 256), "seeds": 2},
           "freeprob": {"width": 200, "samples": 300},
           "ngd": {"widths": (100, 200, 400), "seeds": 4, "train_width": 200, "steps": 3}}
IN_CI = bool(os.environ.get("CI"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _needs(tool, name: str):
    """Skip where `tool` is missing on a developer's machine; in CI (.ci/run installs it) fail."""
    if tool is None:
        if IN_CI:
            pytest.fail(f"{name} is missing in CI: .ci/run installs it")
        pytest.skip(f"{name} is not installed here")


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(out, formats=("html", "md", "ipynb", "tex"), pdf=compiler() is not None,
                        options=OPTIONS, progress=lambda message: None)


def _inline_pieces(block):
    if isinstance(block, Heading | Paragraph):
        yield from block.text
    elif isinstance(block, Table):
        for row in (block.header, *block.rows):
            for cell in row:
                yield from cell
    elif isinstance(block, Figure):
        yield from block.caption
    elif isinstance(block, Checks):
        for check in block.checks:
            yield from check.name


def _formula_count(document) -> int:
    """Formulas the HTML should hold: inline math (a heading's twice: in the table of contents too),
    display math, and each check's error and tolerance."""
    count = 0
    for section in document.sections:
        for block in section.blocks:
            inline = sum(isinstance(p, Math) for p in _inline_pieces(block))
            count += inline * (1 + isinstance(block, Heading))
            count += isinstance(block, Equation) + (2 * len(block.checks) if isinstance(block, Checks) else 0)
    return count


class _Page(HTMLParser):
    """Text nodes, <math> elements, images, ids, links and check rows of a page."""

    def __init__(self):
        super().__init__()
        self.texts, self.maths, self.images, self.ids, self.links, self.rows = [], 0, [], set(), [], []
        self.tags, self._stack = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self._stack.append(tag)
        self.maths += tag == "math"
        if tag == "img":
            self.images.append(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "tr" and attrs.get("class") in ("pass", "fail"):
            self.rows.append(attrs["class"])

    def handle_endtag(self, tag):
        if tag in self._stack:
            while self._stack.pop() != tag:
                pass

    def handle_data(self, data):
        if self._stack[-1:] != ["style"] and data.strip():
            self.texts.append(data)


def _page(report) -> _Page:
    page = _Page()
    page.feed((report.path / "report.html").read_text(encoding="utf-8"))
    return page


def test_every_section_is_built_and_passes_its_checks(report):
    document = report.document
    assert [s.code.splitlines()[2] for s in document.sections] == [
        f"from derive.report import {name}" for name in SECTIONS]
    assert not document.failures, [c.name for c in document.failures]
    for section in document.sections:
        assert section.checks and section.figures, section.title
        for figure in section.figures:
            assert figure.path.parent == report.path / "figures" and figure.path.stat().st_size > 10_000
    kernels = document.sections[SECTIONS.index("kernels")]
    recursions = [b.math.latex for b in kernels.blocks if isinstance(b, Equation)]
    assert len(recursions) == 3 and all(r.startswith(r"\begin{aligned}") for r in recursions)
    meanfield = document.sections[SECTIONS.index("meanfield")]
    assert any("(2, 0)" in b.math.latex for b in meanfield.blocks if isinstance(b, Equation))  # ReLU point


def test_ngd_section_has_the_alpha_table_as_latex_the_isotropy_figure_and_the_training_curves(report):
    ngd = report.document.sections[SECTIONS.index("ngd")]
    table = next(b for b in ngd.blocks if isinstance(b, Table))
    cells = {row[0][0]: [piece.latex for cell in row[1:4] for piece in cell if isinstance(piece, Math)]
             for row in table.rows}
    assert cells["K-FAC"] == ["L N", r"N \left(L - 1\right) + 1", r"\frac{1}{L N}"]
    assert cells["block tri-diagonal"][0] == r"\left\lceil{\frac{L}{3}}\right\rceil"
    assert cells["unit-wise"][0] == r"M \gamma \left(L - 1\right)"
    assert {f.path.name for f in ngd.figures} == {"ngd_isotropy.png", "ngd_training.png"}
    tex = (report.path / "report.tex").read_text(encoding="utf-8")
    assert r"\left\lceil{\frac{L}{3}}\right\rceil" in tex and "ngd_training.png" in tex


def test_check_names_carry_their_math_as_formulas(report):
    for check in report.document.checks:
        for piece in check.name:
            assert isinstance(piece, Math) or "\\" not in piece, check.name
    gaussian = report.document.sections[SECTIONS.index("gaussian")]
    assert Math(r"\mathbb{E}\,\phi(u)^{2}") in gaussian.checks[0].name


def test_html_formulas_are_mathml_and_no_latex_is_left_in_text(report):
    page = _page(report)
    assert page.maths == _formula_count(report.document) > 100
    leaked = [t for t in page.texts if "\\" in t or "$" in t]
    assert not leaked, leaked[:5]
    assert "script" not in page.tags  # no JavaScript


def test_html_is_self_contained_with_every_figure_embedded(report):
    page = _page(report)
    figures = [f for s in report.document.sections for f in s.figures]
    assert len(page.images) == len(figures)
    for image in page.images:
        assert image["alt"] and image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    external = [h for h in page.links if not h.startswith("#")]
    assert not external
    html = (report.path / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/1998/Math/MathML"', "")
    assert "https://" not in html


def test_html_has_a_table_of_contents_and_every_status_at_a_glance(report):
    page = _page(report)
    targets = {h[1:] for h in page.links}
    assert {f"s{i}" for i in range(1, len(report.document.sections) + 1)} <= targets <= page.ids
    assert page.rows == ["pass"] * len(report.document.checks)


def test_chromium_renders_the_html_to_a_nonblank_page(report, tmp_path):
    _needs(CHROMIUM, "chromium")
    from PIL import Image

    shot, width, height = tmp_path / "page.png", 1000, 1600
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--window-size={width},{height}", f"--screenshot={shot}",
                        (report.path / "report.html").as_uri()],
                       check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, height)
    pixels = np.asarray(image, dtype=int)
    dark = np.mean(pixels.sum(axis=2) < 200)
    assert dark > 0.003, f"only {dark:.2%} of the page is text-dark: nothing rendered"
    banner = np.all(pixels == (227, 244, 232), axis=2)  # the green summary: the stylesheet applied
    assert banner.sum() > 1000


def test_markdown_keeps_latex_inside_dollars_and_references_every_figure(report):
    md = (report.path / "report.md").read_text(encoding="utf-8")
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]+\$|`[^`]*`", "", md, flags=re.S).replace(r"\|", "")
    assert "\\" not in prose
    for figure in (f for s in report.document.sections for f in s.figures):
        assert f"](figures/{figure.path.name})" in md
    assert md.count("✅ pass") == len(report.document.checks)


def test_notebook_reproduces_each_section_when_executed(report, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(report.path / "report.ipynb", as_version=4)
    nbformat.validate(nb)
    rebuilds = [c for c in nb.cells if c.cell_type == "code" and "section = " in c.source]
    assert len(rebuilds) == len(SECTIONS)
    assert "activations=('relu', 'sign', 'tanh')" in rebuilds[SECTIONS.index("gaussian")].source
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(report.path)}}).execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[:1]
    for cell in rebuilds:
        shown = cell.outputs[-1]["data"]["text/markdown"]
        assert "✅ pass" in shown and "❌" not in shown


def test_latex_source_is_well_formed(report):
    tex = (report.path / "report.tex").read_text(encoding="utf-8")
    assert tex.startswith(r"\documentclass") and r"\usepackage{amsmath,amssymb}" in tex
    assert tex.rstrip().endswith(r"\end{document}")
    opened = re.findall(r"\\begin\{(\w+\*?)\}", tex)
    assert sorted(opened) == sorted(re.findall(r"\\end\{(\w+\*?)\}", tex))
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    assert tex.count(r"\includegraphics") == sum(len(s.figures) for s in report.document.sections)
    assert not [ch for ch in tex if ord(ch) > 0x17F], "Unicode the LaTeX writer did not translate"


def test_latex_compiles_with_pdflatex(report):
    _needs(compiler(), "pdflatex")
    pdf = report.path / "report.pdf"
    assert pdf in report.files and pdf.read_bytes()[:5] == b"%PDF-"
    log = (report.path / "report.log").read_text(errors="replace")
    pages = int(re.search(r"Output written on report\.pdf \((\d+) pages", log).group(1))
    assert pages >= 5 and "\n! " not in log
