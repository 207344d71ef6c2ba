"""Time the closed-form rules on the built-in activations against plain sympy.integrate.

Hot path: from cold caches, E[φ²], E[φ′²], E[φφ″] (x ~ N(0, q)) and E[φ(x)φ(y)],
E[φ′(x)φ′(y)] ((x, y) ~ N(0, [[q₁, c√q₁q₂], [c√q₁q₂, q₂]])) for every built-in activation,
symbolic in q, q₁, q₂, c (goal: < 5 s in total).  Baseline: what a user would otherwise
write, ``sympy.integrate`` of the 1-D Gaussian integrals, each in a child process killed
after ``LIMIT`` seconds (2-D integrals are out of its reach; not attempted).

Run: ``python benchmarks/bench_closed_forms.py``
"""

import multiprocessing
import time

import sympy as sp

import derive
from derive import closed_forms, gaussian_rules
from derive.activations import BUILTINS
from derive.errors import DivergenceError
from derive.symbols import c, q, q1, q2, x, y

LIMIT = 20.0


def integrands(name):
    act = derive.activation(name)
    phi, d1, d2 = act.expr, act.derivative(), act.derivative(n=2)
    one = [phi**2, d1**2, phi * d2]
    two = [phi * phi.xreplace({x: y}), d1 * d1.xreplace({x: y})]
    return one, two


def engine(names):
    closed_forms._closed_form.cache_clear()
    gaussian_rules.expectation.cache_clear()
    start, closed = time.perf_counter(), 0
    for name in names:
        one, two = integrands(name)
        for f in one:
            closed += _closed(lambda f=f: closed_forms.closed_form_1d(f, x, q))
        for f in two:
            closed += _closed(lambda f=f: closed_forms.closed_form_2d(f, x, y, q1, q2, c))
    return time.perf_counter() - start, closed


def _closed(compute) -> int:
    try:
        return compute() is not None
    except DivergenceError:
        return 1  # an exact answer: infinite


def _integrate(send, f):
    density = sp.exp(-x**2 / (2 * q)) / sp.sqrt(2 * sp.pi * q)
    result = sp.integrate(f * density, (x, -sp.oo, sp.oo), conds="none")
    send.send(not result.has(sp.Integral))


def baseline(names):
    ctx = multiprocessing.get_context("fork")
    total, solved, timeouts = 0.0, 0, 0
    for name in names:
        for f in integrands(name)[0]:
            receive, send = ctx.Pipe(duplex=False)
            worker = ctx.Process(target=_integrate, args=(send, f), daemon=True)
            start = time.perf_counter()
            worker.start()
            done = receive.poll(LIMIT)
            total += time.perf_counter() - start
            solved += bool(done and receive.recv())
            timeouts += not done
            worker.kill()
            worker.join()
    return total, solved, timeouts


def main():
    names = list(BUILTINS)
    seconds, closed = engine(names)
    print(f"closed-form rules, cold cache: {seconds:.2f} s for {len(names)} activations x 5 "
          f"expectations ({closed} closed or exactly infinite)")
    start = time.perf_counter()
    for name in names:
        one, two = integrands(name)
        for f in one:
            _closed(lambda f=f: closed_forms.closed_form_1d(f, x, q))
    warm = time.perf_counter() - start
    print(f"warm cache (1-D again): {warm * 1e3:.1f} ms")
    t_engine_1d, _ = engine(names)
    base, solved, timeouts = baseline(names)
    print(f"sympy.integrate baseline, 1-D only: {base:.1f} s ({solved}/{3 * len(names)} solved, "
          f"{timeouts} stopped at {LIMIT:.0f} s)")
    print(f"ratio baseline / rules (rules timed on all 5 expectations): {base / t_engine_1d:.0f}x"
          f"{' (a lower bound)' if timeouts else ''}")


if __name__ == "__main__":
    main()
