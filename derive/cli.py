"""The ``derive`` command.  ``derive report`` is the main job.

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; errors of `derive` become one-line messages and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derive.errors import DeriveError


def _cmd_report(args) -> int:
    from derive.report import write_report

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = write_report(Path(args.out), progress=progress)
    print(f"report written to {report.path}")
    for check in report.failures:
        print(f"FAILED: {check.name}: error {check.error:.3e} > tolerance {check.tolerance:.0e}",
              file=sys.stderr)
    return 1 if report.failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="write the report folder of every derived result")
    report.add_argument("--out", default="report", help="output folder (default: report)")
    report.set_defaults(run=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DeriveError as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("derive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
