"""The derive command: the report job, exit codes, and error messages."""

import subprocess
import sys

import pytest

from derive.cli import main


def test_report_writes_markdown_and_figures_and_exits_zero(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--out", str(out), "--section", "meanfield"]) == 0
    text = (out / "report.md").read_text()
    assert "## " in text and "$" in text and "FAIL" not in text
    figures = list((out / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures)
    for figure in figures:
        assert f"figures/{figure.name}" in text
    assert "[1/" in capsys.readouterr().err


def test_report_exit_code_is_nonzero_when_a_check_fails(tmp_path, monkeypatch):
    import derive.report as report

    failing = report.Section("broken", "x", (report.Check("deliberately wrong", 1.0, 1e-12),))

    class FakeModule:
        @staticmethod
        def section(figdir):
            return failing

    monkeypatch.setattr(report, "available_sections", lambda: ["derive.report.fake"])
    monkeypatch.setattr(report, "import_module", lambda name: FakeModule)
    assert main(["report", "--out", str(tmp_path)]) == 1
    assert "**FAIL**" in (tmp_path / "report.md").read_text()


def test_console_script_is_installed_and_reports_usage():
    proc = subprocess.run([sys.executable, "-m", "derive.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "report" in proc.stdout


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_gaussian_section_block_verifies_relu(tmp_path):
    from derive.activations import activation
    from derive.report.gaussian import _activation_block

    text, checks = _activation_block(activation("relu"), tmp_path)
    assert "closed form" in text and checks and all(c.passed for c in checks)
    assert (tmp_path / "gaussian_relu.png").stat().st_size > 1000
