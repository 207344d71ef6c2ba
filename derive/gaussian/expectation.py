"""Gaussian expectations: closed forms when derivable, an unevaluated object otherwise.

``expect(f, x, q)`` is E[f(x)] with x ~ N(0, q); ``expect2(f, x, y, q1, q2, c)``
is E[f(x, y)] with (x, y) centred jointly Gaussian, variances q1, q2 and
correlation coefficient c.  Both first try the closed-form rules of
:mod:`derive.gaussian.closed_forms`, then ``sympy.integrate`` under a time limit (1-D),
and otherwise return a :class:`GaussianExpectation`: a SymPy expression that
prints as its defining integral, evaluates at any precision with
``.evalf(n)`` (mpmath quadrature split at the kinks) and lambdifies to a
vectorised numpy routine (:func:`derive.lambdify`).

>>> import sympy as sp
>>> from derive.symbols import x, q
>>> expect(x**4, x, q)
3*q**2
>>> E = expect(sp.tanh(x)**2, x, q)
>>> E.subs(q, 1).evalf(20)
0.39429449039784117442
"""

from __future__ import annotations

import math

import sympy as sp

from derive.errors import DivergenceError, DomainError
from derive.parsing import as_expr
from derive.piecewise import check_defined

_MAX_SYMPY_SECONDS = 2.0


class GaussianExpectation(sp.Expr):
    """E[f] over a centred Gaussian, left unevaluated.

    ``GaussianExpectation(f, (x,), (q,))`` is ∫Dz f(√q z);
    ``GaussianExpectation(f, (x, y), (q1, q2, c))`` is ∫Dz₁Dz₂ f(u₁, u₂) with
    u₁ = √q₁ z₁, u₂ = √q₂ (c z₁ + √(1−c²) z₂).  The integration variables are
    bound: substituting them changes nothing.
    """

    is_commutative = True

    def __new__(cls, f, variables, parameters):
        variables, parameters = sp.Tuple(*variables), sp.Tuple(*parameters)
        if len(variables) not in (1, 2) or len(parameters) != (1 if len(variables) == 1 else 3):
            raise DomainError("a Gaussian expectation takes (x,), (q,) or (x, y), (q1, q2, c)")
        return sp.Expr.__new__(cls, sp.sympify(f), variables, parameters)

    @property
    def integrand(self) -> sp.Expr:
        return self.args[0]

    @property
    def variables(self) -> tuple:
        return tuple(self.args[1])

    @property
    def parameters(self) -> tuple:
        return tuple(self.args[2])

    @property
    def free_symbols(self) -> set:
        inner = self.integrand.free_symbols - set(self.variables)
        return inner | set().union(*(p.free_symbols for p in self.parameters))

    def _eval_subs(self, old, new):
        if old in self.variables:
            return self
        return None

    def _eval_is_real(self):
        return self.integrand.is_real

    def as_integral(self) -> sp.Expr:
        """The defining integral over standard normal variables (the Dz form)."""
        from derive.symbols import z, z1, z2

        density = lambda t: sp.exp(-t**2 / 2) / sp.sqrt(2 * sp.pi)  # noqa: E731
        body = self.integrand.xreplace(dict(zip(self.variables, self.standardised(), strict=True)))
        if len(self.variables) == 1:
            return sp.Integral(body * density(z), (z, -sp.oo, sp.oo))
        return sp.Integral(body * density(z1) * density(z2), (z1, -sp.oo, sp.oo), (z2, -sp.oo, sp.oo))

    def standardised(self) -> tuple:
        """The variables written through standard normals: (√q z,) or (u₁, u₂)."""
        from derive.symbols import z, z1, z2

        if len(self.variables) == 1:
            return (sp.sqrt(self.parameters[0]) * z,)
        q1, q2, c = self.parameters
        return (sp.sqrt(q1) * z1, sp.sqrt(q2) * (c * z1 + sp.sqrt(1 - c**2) * z2))

    def _eval_derivative(self, s):
        """d/ds by the chain rule through the parameters, with the derivatives with
        respect to the covariance entries from Price's theorem (Price 1958; the heat
        equation ∂E f/∂q = ½ E f″ in 1-D, ∂E f/∂Σ₁₂ = E ∂x∂y f) for smooth integrands,
        and from the score of the Gaussian density (E[f ∂ log p/∂Σ], no derivative of f)
        for piecewise ones, whose sympy derivatives would miss the jumps."""
        partials = _parameter_partials(self.integrand, self.variables, self.parameters)
        return sp.Add(*(d * sp.diff(p, s) for d, p in zip(partials, self.parameters, strict=True)
                        if p.has(s)))

    def _sympystr(self, printer) -> str:
        return printer._print(self.as_integral())

    def _latex(self, printer) -> str:
        """∫Dz f(√q z) (or ∫Dz₁Dz₂ f(u₁, u₂)), its parts through `printer`: sympy.latex, Jupyter's
        display and derive.latex all print the same integral."""
        body = self.integrand.xreplace(dict(zip(self.variables, self.standardised(), strict=True)))
        measure = r"\mathcal{D}z" if len(self.variables) == 1 else r"\mathcal{D}z_1\, \mathcal{D}z_2"
        return rf"\int {measure}\, {printer._print(body)}"

    def _eval_evalf(self, prec):
        from derive.gaussian.reference import mp_expectation

        values = [p.evalf(prec) for p in self.parameters]
        body = self.integrand.evalf(prec)
        if not all(v.is_number for v in values) or body.free_symbols - set(self.variables):
            return None
        dps = max(15, int(prec * math.log10(2)))
        return sp.Float(mp_expectation(body, self.variables, values, dps=dps), dps)


def _number(value, name: str):
    """A numeric parameter as a SymPy number, checked finite and real (else None)."""
    value = sp.sympify(value) if not isinstance(value, sp.Basic) else value
    if not value.is_number:
        return None
    if value.has(sp.nan, sp.oo, -sp.oo, sp.zoo) or value.is_real is False:
        raise DomainError(f"{name} = {value} must be a finite real number")
    return value


def _check_variance(q, name: str):
    v = _number(q, name)
    if v is not None and v.is_negative:
        raise DomainError(f"variance {name} = {v} is negative; a variance must be >= 0")
    if getattr(q, "is_negative", None):
        raise DomainError(f"variance {name} = {q} is declared negative; a variance must be >= 0")


def _check_correlation(c):
    v = _number(c, "c")
    if v is not None and abs(v) > 1:
        raise DomainError(f"correlation c = {v} has |c| > 1; a correlation coefficient lies in [-1, 1]")


def expect(expr, x, q) -> sp.Expr:
    """E[expr] with x ~ N(0, q): a closed form, or a :class:`GaussianExpectation`.

    `q` may be a number or any SymPy expression (e.g. ``sigma_w2*q + sigma_b2``).
    """
    from derive.gaussian.closed_forms import closed_form_1d

    expr, x, q = as_expr(expr), as_expr(x), as_expr(q)
    _check_variance(q, "q")
    check_defined(expr)
    if x not in expr.free_symbols:
        return expr
    _refuse_superexponential(expr, x)
    result = closed_form_1d(expr, x, q)
    if result is None:
        result = _sympy_integrate_1d(expr, x, q)
    return GaussianExpectation(expr, (x,), (q,)) if result is None else result


def expect2(expr, x, y, q1, q2, c) -> sp.Expr:
    """E[expr] with (x, y) centred Gaussian, Var x = q1, Var y = q2, corr(x, y) = c."""
    from derive.gaussian.closed_forms import closed_form_2d

    expr, x, y, q1, q2, c = map(as_expr, (expr, x, y, q1, q2, c))
    check_defined(expr)
    _check_variance(q1, "q1")
    _check_variance(q2, "q2")
    _check_correlation(c)
    if y not in expr.free_symbols:
        return expect(expr, x, q1)
    if x not in expr.free_symbols:
        return expect(expr, y, q2)
    result = closed_form_2d(expr, x, y, q1, q2, c)
    return GaussianExpectation(expr, (x, y), (q1, q2, c)) if result is None else result


def _superexponential(expr, x) -> bool:
    """Whether expr contains e^{P(x)}, P a polynomial of degree > 2 with a positive leading
    coefficient: that beats every Gaussian density."""
    for node in expr.atoms(sp.exp):
        u = node.args[0]
        if u.is_polynomial(x) and not (u.free_symbols - {x}):
            poly = sp.Poly(u, x)
            if poly.degree() > 2 and poly.LC() > 0:
                return True
    return False


def _refuse_superexponential(expr, x) -> None:
    """DivergenceError for a product with a factor e^{P(x)} of degree > 2 and nothing that cuts the
    tails off (steps, Piecewise): E[expr] is infinite for every q > 0 (a quick answer, instead of
    integrators that exhaust their time limits)."""
    for term in sp.Add.make_args(expr):
        if _superexponential(term, x) and not term.has(sp.Heaviside, sp.Piecewise, sp.Max, sp.Min,
                                                      sp.Abs, sp.sign, sp.erf, sp.erfc):
            raise DivergenceError(f"E[{expr}] diverges: its factor e^(polynomial of degree > 2) grows faster "
                                  "than any Gaussian density falls; no variance q > 0 makes it finite")


def _hopeless_for_sympy(expr, x) -> bool:
    """Integrands on which ``sympy.integrate`` only burns its time limit, or answers wrongly:
    kinks and deltas are the closed-form rules' job, and where those decline (Θ(x)δ′(x))
    ``sympy.integrate`` returns conventions such as DiracDelta(0)."""
    rational_in_x = any(p.exp.is_negative and p.base.has(x) for p in expr.atoms(sp.Pow))
    return rational_in_x or expr.has(sp.tanh, sp.log, sp.atan, sp.Piecewise, sp.Max, sp.Min,
                                     sp.Heaviside, sp.DiracDelta, sp.sign, sp.Abs)


def _integrate_into(pipe, expr, x, q):
    t = sp.Dummy("t", real=True)
    density = sp.exp(-t**2 / (2 * q)) / sp.sqrt(2 * sp.pi * q)
    try:
        pipe.send(sp.integrate(expr.xreplace({x: t}) * density, (t, -sp.oo, sp.oo), conds="none"))
    except Exception:  # SymPy raises many kinds; any failure means "no closed form"
        pipe.send(None)


def _sympy_integrate_1d(expr, x, q):
    """``sympy.integrate`` of the Gaussian integral in a child process killed after a
    time limit; None when it fails, times out or leaves an integral."""
    import multiprocessing

    if _hopeless_for_sympy(expr, x) or "fork" not in multiprocessing.get_all_start_methods():
        return None
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_integrate_into, args=(send, expr, x, q), daemon=True)
    worker.start()
    result = receive.recv() if receive.poll(_MAX_SYMPY_SECONDS) else None
    worker.kill()
    worker.join()
    if result is None or result.has(sp.Integral, sp.nan, sp.zoo, sp.Piecewise):
        return None
    return sp.simplify(result)


def _covariance_partials(f, variables, parameters):
    """∂E[f]/∂Σ₁₁, ∂E[f]/∂Σ₂₂, ∂E[f]/∂Σ₁₂ (1-D: ∂E[f]/∂q), each a Gaussian expectation."""
    from derive.piecewise import is_smooth

    if len(variables) == 1:
        (u,), (q,) = variables, parameters
        if is_smooth(f):
            return (expect(sp.diff(f, u, 2) / 2, u, q),)
        return (expect(f * (u**2 - q) / (2 * q**2), u, q),)
    (u, v), (q1, q2, c) = variables, parameters
    E = lambda g: expect2(g, u, v, q1, q2, c)  # noqa: E731
    if is_smooth(f):
        return E(sp.diff(f, u, 2) / 2), E(sp.diff(f, v, 2) / 2), E(sp.diff(f, u, v))
    det = q1 * q2 * (1 - c**2)
    s12 = c * sp.sqrt(q1 * q2)
    w1, w2 = (q2 * u - s12 * v) / det, (q1 * v - s12 * u) / det  # Σ⁻¹ (u, v)
    return (E(f * (w1**2 - q2 / det) / 2), E(f * (w2**2 - q1 / det) / 2), E(f * (w1 * w2 + s12 / det)))


def _parameter_partials(f, variables, parameters):
    """∂E[f]/∂q (1-D) or ∂E[f]/∂(q1, q2, c) (2-D) via Σ₁₁ = q1, Σ₂₂ = q2, Σ₁₂ = c √(q1 q2)."""
    grads = _covariance_partials(f, variables, parameters)
    if len(variables) == 1:
        return grads
    (q1, q2, c), (e11, e22, e12) = parameters, grads
    return (e11 + e12 * c * sp.sqrt(q2 / q1) / 2, e22 + e12 * c * sp.sqrt(q1 / q2) / 2,
            e12 * sp.sqrt(q1 * q2))
