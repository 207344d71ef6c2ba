"""The derive command: the report job, exit codes, and error messages."""

import subprocess
import sys

import pytest

from derive.cli import main


def test_report_writes_html_and_markdown_by_default_and_exits_zero(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--out", str(out), "--section", "kernels"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md"]
    text = (out / "report.md").read_text()
    assert "## " in text and "$" in text and "FAIL" not in text
    figures = list((out / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in text
    captured = capsys.readouterr()
    assert "[1/1] kernels" in captured.err and "report.html, report.md" in captured.out


def _broken_section(monkeypatch):
    """A section module `derive.report.broken` whose one check fails."""
    import importlib.machinery
    import types

    import derive.report as report
    from derive.report import Check, Checks, Section, text
    from derive.symbols import sigma_w2

    module = types.ModuleType("derive.report.broken")
    module.__spec__ = importlib.machinery.ModuleSpec("derive.report.broken", None)
    wrong = Check(text("wrong ", sigma_w2), 1.0, 1e-12)
    module.section = lambda figdir: Section("broken", (Checks((wrong,)),))
    monkeypatch.setitem(sys.modules, "derive.report.broken", module)
    monkeypatch.setattr(report, "SECTIONS", ("broken",))


def test_report_exit_code_is_nonzero_when_a_check_fails(tmp_path, monkeypatch, capsys):
    _broken_section(monkeypatch)
    assert main(["report", "--out", str(tmp_path)]) == 1
    assert "❌ **FAIL**" in (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert '<tr class="fail">' in html and "✗ 1 of 1 failed" in html and "✗ 0 of 1 checks passed" in html
    assert "FAILED: wrong $\\sigma_w^2$: error 1.000e+00 > tolerance 1e-12" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--section", "nope"],
     "unknown section 'nope': the sections are gaussian, meanfield, kernels, freeprob, fisher, ngd"),
    (["--format", "html,docx"], "unknown format 'docx': --format takes a comma-separated list of"),
    (["--format", ","], "unknown format (none given)"),
])
def test_bad_requests_are_usage_errors_before_any_work(arguments, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["report", "--out", str(out), *arguments]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_unwritable_out_is_a_usage_error(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["report", "--out", str(afile / "rep")]) == 2
    assert "cannot write the report into" in capsys.readouterr().err
    assert main(["report", "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_pdf_without_a_latex_compiler_says_so_before_any_work(tmp_path, monkeypatch, capsys):
    import derive.report.writers.latex as latex

    monkeypatch.setattr(latex, "compiler", lambda: None)
    out = tmp_path / "rep"
    assert main(["report", "--out", str(out), "--pdf"]) == 2
    err = capsys.readouterr().err
    assert "--pdf needs the LaTeX compiler pdflatex, which is not installed here" in err and not out.exists()


def test_console_script_is_installed_and_reports_usage():
    proc = subprocess.run([sys.executable, "-m", "derive.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "report" in proc.stdout


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_gaussian_section_block_verifies_relu(tmp_path):
    from derive.activations import activation
    from derive.report import Checks, Table
    from derive.report.gaussian import _activation_block

    blocks = _activation_block(activation("relu"), tmp_path)
    table = next(b for b in blocks if isinstance(b, Table))
    assert [row[2] for row in table.rows] == [("closed form",)] * 4
    checks = [c for b in blocks if isinstance(b, Checks) for c in b.checks]
    assert len(checks) == 8 and all(c.passed for c in checks)
    assert (tmp_path / "gaussian_relu.png").stat().st_size > 1000


# --- derive learning-rate -------------------------------------------------------------------------------


RATE = ["learning-rate", "relu", "--sigma-w2", "2", "--sigma-b2", "0.1", "--depth", "6", "--width", "1024",
        "--samples", "256"]


def test_learning_rate_prints_the_bound_and_its_json_matches_the_library(capsys):
    import json

    from derive.fisher import fisher_spectrum

    assert main(RATE) == 0
    out = capsys.readouterr().out
    assert "learning rate bound 2/lambda_max = 0.000831743" in out
    assert main([*RATE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    spec = fisher_spectrum("relu", 2.0, 0.1, 6, width=1024, samples=256)
    assert data["lambda_max"] == spec.lambda_max and data["learning_rate_bound"] == spec.learning_rate_bound


def test_learning_rate_with_last_layer_bn_and_a_network_check(capsys):
    import json

    assert main([*RATE, "--last-layer-bn", "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    bn = data["last_layer_bn"]
    assert bn["reduction"] > 100 and bn["leading"] < bn["estimate"] < data["network"]["lambda_max"]


@pytest.mark.parametrize("change, message", [
    (["--depth", "1"], "depth = 1 must be an integer >= 2"), (["--width", "0"], "width = 0"),
    (["--samples", "0"], "samples = 0"), (["--outputs", "0"], "outputs = 0"),
])
def test_learning_rate_bad_input_exits_2_with_the_reason(change, message, capsys):
    assert main([*RATE, *change]) == 2
    assert message in capsys.readouterr().err
