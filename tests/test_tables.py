"""Chebyshev tables (derive.gaussian.tables) and their on-disk cache (derive.gaussian.cache).

The tables are checked against the functions they sample and those functions' derivatives
written here by hand; the cache by what a fresh table reads back (bit for bit, without
sampling), by files that are corrupt, foreign or written concurrently, and by DERIVE_CACHE=0."""

import gc
import multiprocessing
import os

import mpmath as mp
import numpy as np
import pytest

import derive
from derive.gaussian import cache
from derive.gaussian.equal_variances import EqualVariances
from derive.gaussian.tables import Table1D, Table2D, clenshaw


def f1(t):  # smooth, and halved near t = 0.3 (the peak needs finer panels)
    return np.stack([np.exp(np.sin(t)), 1 / (1 + 400 * (t - 0.3) ** 2)])


def df1(t):
    return np.stack([np.cos(t) * np.exp(np.sin(t)), -800 * (t - 0.3) / (1 + 400 * (t - 0.3) ** 2) ** 2])


def f2(t, c):
    return (np.exp(-t / 3) * np.cos(2 * c) + c**3)[None]


def df2_dc(t, c):
    return -2 * np.exp(-t / 3) * np.sin(2 * c) + 3 * c**2


def same(a, b) -> bool:
    """Equal to rounding: the stored coefficients are the built ones, but numpy's reductions may
    round differently for arrays at other addresses (its SIMD loops peel to alignment)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-15 * np.max(np.abs(a))))


def never(*_):
    raise AssertionError("a loaded table sampled its function")


@pytest.fixture
def disk_cache(tmp_path, monkeypatch):
    """The cache switched on, in a folder of this test (tables of earlier tests collected)."""
    gc.collect()
    monkeypatch.setenv("DERIVE_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "derive" / "tables"


@pytest.mark.parametrize("n", [1, 2, 3, 20])
def test_clenshaw_sums_and_slopes_against_numpy_chebyshev(n):
    from numpy.polynomial import chebyshev

    rng = np.random.default_rng(n)
    rows, s = rng.standard_normal((n, 40)), rng.uniform(-1, 1, 40)
    value, slope = clenshaw(rows, s, slope=True)
    for i in range(s.size):
        assert value[i] == pytest.approx(chebyshev.chebval(s[i], rows[:, i]), abs=1e-14)
        assert slope[i] == pytest.approx(chebyshev.chebval(s[i], chebyshev.chebder(rows[:, i])), abs=1e-12)
    assert np.array_equal(clenshaw(rows, s), value)


def test_table1d_values_and_derivatives_against_the_function():
    tol = 1e-13
    table = Table1D(f1, 2, tol=tol)
    t = np.random.default_rng(1).uniform(-4, 5, 5000)
    values, slopes = table(t, derivative=True)
    assert np.all(np.abs(values - f1(t)) <= tol * np.maximum(1, np.abs(f1(t))))  # the requested accuracy
    assert np.max(np.abs(slopes - df1(t)) / (1 + np.abs(df1(t)))) < 1e-10
    assert any(p.hi - p.lo < 1 for p in table._panels)  # some cells were halved (the peak)
    only_second = table(t, functions=(1,))
    assert only_second.shape == (1, t.size)
    assert np.allclose(only_second[0], values[1], rtol=1e-15, atol=0)  # the same sums, to rounding


def test_table2d_values_and_c_slopes_against_the_function():
    tol = 1e-13
    table = Table2D(f2, 1, tol=tol)
    rng = np.random.default_rng(2)
    t, c = rng.uniform(-3, 4, 4000), rng.uniform(-1, 1, 4000)
    values, slopes = table.with_slope(t, c)
    exact = f2(t, c)[0]
    assert np.all(np.abs(values[0] - exact) <= tol * np.maximum(1, np.abs(exact)))  # the requested accuracy
    assert np.max(np.abs(slopes[0] - df2_dc(t, c))) < 1e-10


def test_the_reported_errors_hold_against_30_digit_values():
    """error_bound bounds the actual error, rounding included, at tolerances down to below the
    rounding level (where the coefficient tail alone did not); max_error stays small."""
    rng = np.random.default_rng(5)
    t, c = rng.uniform(-3, 4, 1500), rng.uniform(-1, 1, 1500)
    with mp.workdps(30):
        peak = [1 / (1 + 400 * (mp.mpf(a) - mp.mpf("0.3"))**2) for a in t]
        exact1 = np.array([[float(mp.exp(mp.sin(mp.mpf(a)))) for a in t], [float(p) for p in peak]])
        exact2 = np.array([[float(mp.exp(-mp.mpf(a) / 3) * mp.cos(2 * mp.mpf(b)) + mp.mpf(b)**3)
                            for a, b in zip(t, c, strict=True)]])
    for tol in (1e-13, 1e-15):
        one, two = Table1D(f1, 2, tol=tol), Table2D(f2, 1, tol=tol)
        for error, bound, top in ((np.abs(one(t) - exact1), one.error_bound(t), one.max_error),
                                  (np.abs(two(t, c) - exact2), two.error_bound(t, c), two.max_error)):
            assert np.all(error <= bound)
            assert top < 1e-13  # honest, and not hopelessly pessimistic


def test_table_states_round_trip_without_sampling():
    rng = np.random.default_rng(3)
    t, c = rng.uniform(-3, 3, 500), rng.uniform(-1, 1, 500)
    one, two = Table1D(f1, 2), Table2D(f2, 1, integral=True)
    expected = one(t, derivative=True), two.with_slope(t, c), two.integral(t, c)
    one_read, two_read = Table1D(never, 2), Table2D(never, 1, integral=True)
    one_read.merge(one.state())
    two_read.merge(two.state())
    got = one_read(t, derivative=True), two_read.with_slope(t, c), two_read.integral(t, c)
    for a, b in zip(expected, got, strict=True):
        assert all(same(x, y) for x, y in zip(a, b, strict=True))
    assert one_read.panel_count == one.panel_count and two_read.patch_count == two.patch_count


def _evaluations(ev):
    q = np.geomspace(1e-2, 1e2, 300)
    c = np.linspace(-0.9, 0.999, 300)
    return [*ev.one(q), *ev.g(q, c, derivative=True)]


def test_a_fresh_process_reads_the_tables_back(disk_cache):
    act = derive.activation("erf")  # closed forms: quick to sample (the cache does not care)
    ev = EqualVariances(act)
    before = _evaluations(ev)
    cache.flush()
    files = list(disk_cache.glob("*.npz"))
    assert len(files) == 1
    fresh = EqualVariances(act)  # what a new process builds: the stored panels merged in
    for table in (fresh._table1, fresh._table_cd, fresh._table_g):
        table.func = never
    after = _evaluations(fresh)
    assert all(same(a, b) for a, b in zip(before, after, strict=True))
    assert fresh.error == ev.error


@pytest.mark.parametrize("damage", ["truncated", "bytes", "foreign code", "other key"])
def test_a_corrupt_or_foreign_file_is_ignored_and_replaced(disk_cache, monkeypatch, damage):
    act = derive.activation("erf")
    ev = EqualVariances(act)
    good = _evaluations(ev)
    cache.flush()
    (path,) = disk_cache.glob("*.npz")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bytes":  # one byte of an array changed: the checksum no longer matches
        at = len(data) // 2
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    elif damage == "foreign code":
        monkeypatch.setattr(cache, "code_digest", lambda: "another version of derive")
    else:  # a valid file under another activation's name
        os.replace(path, cache._path("equal variances of another activation"))
        assert cache.load("equal variances of another activation") is None
    assert cache.load(ev.cache_key) is None
    rebuilt = EqualVariances(act)  # builds its tables as without a cache
    assert all(same(a, b) for a, b in zip(good, _evaluations(rebuilt), strict=True))
    cache.flush()
    assert cache.load(ev.cache_key) is not None  # replaced by a valid file


def test_derive_cache_0_reads_and_writes_nothing(disk_cache, monkeypatch):
    act = derive.activation("erf")
    _evaluations(EqualVariances(act))
    cache.flush()
    assert len(list(disk_cache.glob("*.npz"))) == 1
    monkeypatch.setenv("DERIVE_CACHE", "0")
    off = EqualVariances(act)
    assert off._table1.panel_count == 0  # nothing read
    _evaluations(off)
    monkeypatch.setenv("XDG_CACHE_HOME", str(disk_cache.parent.parent / "elsewhere"))
    cache.flush()
    assert not (disk_cache.parent.parent / "elsewhere").exists()  # nothing written


def test_an_unwritable_cache_folder_costs_nothing_but_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DERIVE_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    ev = EqualVariances(derive.activation("erf"))
    _evaluations(ev)
    cache.flush()  # no error
    assert cache.load(ev.cache_key) is None


def _writer(folder, seed, rounds):
    os.environ.update(DERIVE_CACHE="1", XDG_CACHE_HOME=folder)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        n = int(rng.integers(1000, 40000))
        cache.save("concurrent", {"a": {"x": np.full(n, float(seed))}})


def test_concurrent_writers_never_leave_a_partial_file(disk_cache):
    folder = str(disk_cache.parent.parent)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(folder, seed, 40)) for seed in (1, 2)]
    for w in writers:
        w.start()
    seen = set()
    while any(w.is_alive() for w in writers):
        state = cache.load("concurrent")
        if state is not None:  # every file read is complete and one writer's
            values = np.unique(state["a"]["x"])
            assert values.size == 1 and values[0] in (1.0, 2.0)
            seen.add(float(values[0]))
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert cache.load("concurrent") is not None and seen
    assert not list(disk_cache.glob("*.tmp"))  # no temporary file left behind


def test_the_outermost_numeric_call_saves_once(disk_cache, monkeypatch):
    saves = []
    monkeypatch.setattr(cache, "save", lambda key, state: saves.append(key))
    mf = derive.MeanField("tanh")
    ev = EqualVariances(mf.activation)  # attached: saved when it builds panels in a call
    monkeypatch.setattr("derive.meanfield.maps.equal_variances", lambda act: ev)
    monkeypatch.setattr("derive.meanfield.theory.equal_variances", lambda act: ev)
    mf.phase_diagram(np.linspace(1, 3, 30), np.linspace(0, 0.2, 25), stride=4)  # many nested calls
    assert saves == [ev.cache_key]
    mf.fixed_point(2.0, 0.1)  # nothing new built: nothing saved
    assert saves == [ev.cache_key]
