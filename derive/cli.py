"""The ``derive`` command.  ``derive report`` is the main job.

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; errors of `derive` become one-line messages and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derive.errors import DeriveError, UsageError


def _cmd_report(args) -> int:
    from derive.report import plain, write_report

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    report = write_report(Path(args.out), formats=formats, only=tuple(args.section or ()), pdf=args.pdf,
                          progress=progress)
    print(f"report written to {report.path}: {', '.join(f.name for f in report.files)}; "
          f"{report.document.summary()}")
    for check in report.failures:
        print(f"FAILED: {plain(check.name)}: error {check.error:.3e} > tolerance {check.tolerance:.0e}",
              file=sys.stderr)
    return 1 if report.failures else 0


def _cmd_critical_line(args) -> int:
    import json

    import mpmath as mp

    from derive.errors import NoFixedPointError
    from derive.meanfield import MeanField

    mf = MeanField(args.activation)
    line = mf.critical_line()
    result = line.as_dict()
    if args.sigma_b2 is not None:
        point = mf.critical_point(args.sigma_b2, dps=args.dps)
        if not mp.isfinite(point.sigma_w2):
            raise NoFixedPointError(line.no_point_message(args.sigma_b2))
        digits = args.dps or 15
        result["at"] = {"sigma_b2": args.sigma_b2, "sigma_w2": _number(point.sigma_w2, digits),
                        "q_star": _number(point.q_star, digits), "method": point.method}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{result['activation']}: critical line chi_1 = 1 ({result['kind']}; {result['method']})")
    print(f"  {result['explanation']}")
    for key in ("equation", "sigma_w2_of_q", "sigma_b2_of_q"):
        if result[key] is not None:
            print(f"  {key}: {result[key]}")
    if "at" in result:
        at = result["at"]
        print(f"  at sigma_b2 = {at['sigma_b2']}: sigma_w2 = {at['sigma_w2']}, q* = {at['q_star']}")
    return 0


def _number(value, digits: int):
    """A float for JSON, or a decimal string when more digits than a float holds were asked for."""
    import mpmath as mp

    if digits <= 15:
        return float(value)
    return mp.nstr(value, digits)


#: the largest phase-diagram grid the command computes (n x n points)
MAX_GRID = 2000


def _figure_path(text: str) -> Path:
    """The output file of a figure, checked before any work: a known format, an existing folder."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(text)
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in formats:
        raise UsageError(f"--out {text}: unknown figure format {path.suffix or '(none)'!r}; use one of "
                          f"{', '.join('.' + f for f in sorted(formats))}")
    if not path.parent.is_dir():
        raise UsageError(f"--out {text}: the folder {path.parent} does not exist; create it first")
    return path


def _cmd_phase_diagram(args) -> int:
    import numpy as np

    from derive.meanfield import MeanField, Regime

    if not 2 <= args.n <= MAX_GRID:
        raise UsageError(f"--n {args.n}: the grid needs 2 to {MAX_GRID} points per axis")
    out = _figure_path(args.out)
    mf = MeanField(args.activation)
    w = np.linspace(*args.sigma_w2, args.n)
    b = np.linspace(*args.sigma_b2, args.n)
    diagram = mf.phase_diagram(w, b, progress=lambda m: print(f"  {m} ...", file=sys.stderr, flush=True))
    fig = diagram.plot()
    fig.savefig(out, dpi=120)
    counts = {code.name.lower(): int(np.sum(diagram.regime == code)) for code in Regime
              if np.any(diagram.regime == code)}
    print(f"phase diagram of {args.activation} on {args.n}x{args.n} points written to {args.out}")
    print(f"  regimes: {counts}; {diagram.method}")
    return 0


def _cmd_learning_rate(args) -> int:
    """The largest stable learning rate 2/λ_max of a random network (Karakida, Akaho & Amari 2019),
    with the reduction by batch norm in the last layer, and optionally one actual network's own."""
    import json
    import warnings

    from derive.fisher import FisherAccuracyWarning, empirical, fisher_spectrum

    last = "mean_subtracted" if args.last_layer_bn else "plain"
    common = dict(width=args.width, samples=args.samples, outputs=args.outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FisherAccuracyWarning)  # reported below, in the output
        plain = fisher_spectrum(args.activation, args.sigma_w2, args.sigma_b2, args.depth, **common)
        spec = plain if last == "plain" else fisher_spectrum(args.activation, args.sigma_w2, args.sigma_b2,
                                                             args.depth, last_layer=last, **common)
    result = {"activation": args.activation, "sigma_w2": args.sigma_w2, "sigma_b2": args.sigma_b2,
              "depth": args.depth, "width": args.width, "samples": args.samples, "outputs": args.outputs,
              "parametrisation": "standard", "kappa1": spec.kappa1, "kappa2": spec.kappa2,
              "alpha": spec.alpha,
              "mean": spec.mean, "second_moment": spec.second_moment, "lambda_max": spec.lambda_max,
              "learning_rate_bound": spec.learning_rate_bound,
              "lambda_max_formula": "alpha M ((T-1)/T kappa2 + kappa1/T)" if last == "plain"
              else "rho alpha (kappa1 - kappa2), rho = M/T (leading order)",
              "warnings": list(spec.warnings)}
    if last == "mean_subtracted":
        analysis = spec.mean_subtraction
        result["last_layer_bn"] = {"leading": analysis.leading, "estimate": analysis.estimate,
                                   "learning_rate_bound_of_estimate": 2 / analysis.estimate,
                                   "without_bn_lambda_max": plain.lambda_max,
                                   "reduction": plain.lambda_max / analysis.leading}
    if args.check:
        emp = empirical(args.activation, args.sigma_w2, args.sigma_b2, args.depth, seed=args.seed,
                        last_layer=last, **common)
        result["network"] = {"seed": args.seed, "lambda_max": emp.lambda_max,
                             "learning_rate_bound": emp.learning_rate_bound, "mean": emp.mean,
                             "second_moment": emp.second_moment}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.activation}, sigma_w2 = {args.sigma_w2}, sigma_b2 = {args.sigma_b2}, L = {args.depth}, "
          f"M = {args.width}, T = {args.samples}, C = {args.outputs} (standard parametrisation)")
    print(f"  kappa1 = {spec.kappa1:.6g}, kappa2 = {spec.kappa2:.6g}, alpha = {spec.alpha:g}")
    print(f"  lambda_max = {result['lambda_max_formula']} = {spec.lambda_max:.6g}")
    if last == "plain":
        print(f"  learning rate bound 2/lambda_max = {spec.learning_rate_bound:.6g}")
    else:
        bn = result["last_layer_bn"]
        print(f"  with batch norm in the last layer lambda_max >= {bn['leading']:.6g} (the leading term is "
              f"the mean nonzero eigenvalue), about {bn['estimate']:.6g} with the input-overlap correction, "
              "and actual networks exceed that (finite-width fluctuations, not derived)")
        print(f"  so the stable learning rate is at most 2/lambda_max = {spec.learning_rate_bound:.6g}, "
              f"at most {bn['learning_rate_bound_of_estimate']:.6g} with the correction (an actual "
              "network's is smaller still: --check)")
        print(f"  without batch norm lambda_max = {plain.lambda_max:.6g} and 2/lambda_max = "
              f"{plain.learning_rate_bound:.6g}: batch norm lowers lambda_max about {bn['reduction']:.0f}x")
    if args.check:
        net = result["network"]
        print(f"  one network (seed {args.seed}): lambda_max = {net['lambda_max']:.6g}, "
              f"2/lambda_max = {net['learning_rate_bound']:.6g}")
    for note in spec.warnings:
        print(f"  warning: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="write the report folder of every derived result")
    report.add_argument("--out", default="report", help="output folder (default: report)")
    report.add_argument("--section", action="append", metavar="NAME",
                        help="only this section (gaussian, meanfield, kernels, freeprob, fisher, "
                             "ngd); repeatable")
    report.add_argument("--format", default="html,md", metavar="LIST",
                        help="comma-separated formats: html, md, ipynb, tex (default: html,md)")
    report.add_argument("--pdf", action="store_true",
                        help="also compile report.tex to report.pdf with pdflatex (implies tex)")
    report.set_defaults(run=_cmd_report)
    line = sub.add_parser("critical-line", help="the chi_1 = 1 line of an activation (mean-field theory)")
    line.add_argument("activation", help="a built-in name (tanh, relu, erf, ...) or a formula in x")
    line.add_argument("--sigma-b2", type=float, help="also give the critical sigma_w2 at this sigma_b2")
    line.add_argument("--dps", type=int, help="digits for the critical point (mpmath)")
    line.add_argument("--json", action="store_true", help="print JSON")
    line.set_defaults(run=_cmd_critical_line)
    phase = sub.add_parser("phase-diagram", help="the mean-field phase diagram of an activation as a PNG")
    phase.add_argument("activation", help="a built-in name (tanh, relu, erf, ...) or a formula in x")
    phase.add_argument("--out", required=True, help="the PNG file to write")
    phase.add_argument("--sigma-w2", type=float, nargs=2, default=(0.5, 4.0), metavar=("MIN", "MAX"))
    phase.add_argument("--sigma-b2", type=float, nargs=2, default=(0.0, 0.3), metavar=("MIN", "MAX"))
    phase.add_argument("--n", type=int, default=300, help="grid points per axis (default 300)")
    phase.set_defaults(run=_cmd_phase_diagram)
    rate = sub.add_parser("learning-rate", help="the largest stable learning rate 2/lambda_max of a random "
                                                "network (Fisher information)")
    rate.add_argument("activation", help="a built-in name (relu, tanh, erf, ...) or a formula in x")
    rate.add_argument("--sigma-w2", type=float, required=True, help="weight variance sigma_w^2")
    rate.add_argument("--sigma-b2", type=float, required=True, help="bias variance sigma_b^2")
    rate.add_argument("--depth", type=int, required=True, help="number of weight layers L (>= 2)")
    rate.add_argument("--width", type=int, required=True, help="hidden (and input) width M")
    rate.add_argument("--samples", type=int, required=True, help="number of training samples T")
    rate.add_argument("--outputs", type=int, default=1, help="number of linear outputs C (default 1)")
    rate.add_argument("--last-layer-bn", action="store_true",
                      help="batch norm (mean subtraction) in the last layer")
    rate.add_argument("--check", action="store_true",
                      help="also compute one actual network's exact lambda_max")
    rate.add_argument("--seed", type=int, default=0, help="seed of that network (default 0)")
    rate.add_argument("--json", action="store_true", help="print JSON")
    rate.set_defaults(run=_cmd_learning_rate)
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
