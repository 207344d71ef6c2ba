"""The on-disk cache of tables: a fresh process reads the panels an earlier one sampled.

Sampling the Chebyshev tables of an activation's moments (:mod:`derive.gaussian.tables`,
:mod:`derive.gaussian.equal_variances`) is most of the first mean-field call in a process
(about a second for the tanh phase diagram); the panels depend only on the activation and on
derive's own code.  So they are stored in the user's cache folder,
``$XDG_CACHE_HOME/derive/tables`` (``~/.cache/derive/tables`` when XDG_CACHE_HOME is unset), one
file per activation, named by a digest of its SymPy form, and versioned: each file records the
format, the key and a digest of derive's source files and numpy's version, so a file written by
other code is never read.

* Concurrent writers: a file is written under a temporary name in the same folder and moved
  into place by ``os.replace`` (atomic on POSIX and Windows), after merging the panels another
  process stored meanwhile; a reader sees an old or a new file, never a partial one.
* Corrupt or foreign files: each file holds a SHA-256 of its arrays; a file that cannot be read,
  or whose format, key, code digest or checksum do not match, is ignored — the tables are built
  as without a cache — and replaced at the next save.
* ``DERIVE_CACHE=0`` (or ``off``, ``false``, ``no``) disables the cache: nothing is read or written.

An object takes part through :func:`attach` (its stored panels are merged in) and is saved when
the outermost call wrapped by :func:`persisted` returns, if it built new panels.  The object
offers ``cache_key`` (a string), ``cache_state()`` (a dict of named dicts of arrays),
``cache_merge(state)`` and ``cache_version`` (a number that grows as panels are built).

>>> folder().parts[-2:]
('derive', 'tables')
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path

import numpy as np

#: the layout of a file; bump it when the stored arrays change meaning
FORMAT = 2
_OFF = ("0", "off", "false", "no")
_registry: weakref.WeakSet = weakref.WeakSet()
_saved: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_depth = threading.local()


def enabled() -> bool:
    """False when the environment variable DERIVE_CACHE is 0, off, false or no (or when derive's
    source files cannot be read to version the files)."""
    return os.environ.get("DERIVE_CACHE", "1").strip().lower() not in _OFF and code_digest() is not None


def folder() -> Path:
    """$XDG_CACHE_HOME/derive/tables, or ~/.cache/derive/tables."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "derive" / "tables"


@functools.cache
def code_digest() -> str | None:
    """SHA-256 of derive's source files (path and content) and numpy's version; None when no
    source file is found (then nothing could tell stale files from current ones)."""
    root = Path(__file__).resolve().parents[1]
    sources = sorted(root.rglob("*.py"))
    if not sources:
        return None
    digest = hashlib.sha256(f"{FORMAT} numpy {np.__version__}".encode())
    for path in sources:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _path(key: str) -> Path:
    return folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"


def _checksum(arrays: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name} {value.dtype.str} {value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _flatten(state: dict) -> dict:
    return {f"{group}/{name}": value for group, arrays in state.items() for name, value in arrays.items()}


def load(key: str) -> dict | None:
    """The stored state of `key` (a dict of named dicts of arrays), or None when there is none,
    the cache is disabled, or the file does not match (format, key, code, checksum)."""
    if not enabled():
        return None
    try:
        with np.load(_path(key), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, truncated, no meta
        return None
    expected = {"format": FORMAT, "key": key, "code": code_digest(), "checksum": _checksum(arrays)}
    if meta != expected:
        return None
    state: dict = {}
    for name, value in arrays.items():
        group, _, field = name.partition("/")
        state.setdefault(group, {})[field] = value
    return state


def save(key: str, state: dict) -> None:
    """Write `state` for `key`: to a temporary file in the cache folder, then os.replace onto the
    key's file.  A folder that cannot be written leaves the cache unchanged (no error: the
    cache only saves time)."""
    if not enabled():
        return
    arrays = _flatten(state)
    meta = {"format": FORMAT, "key": key, "code": code_digest(), "checksum": _checksum(arrays)}
    target = _path(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        return


def attach(obj) -> None:
    """Merge the stored panels of `obj` into it and register it for saving."""
    if not enabled():
        return
    state = load(obj.cache_key)
    if state is not None:
        obj.cache_merge(state)
    _registry.add(obj)
    _saved[obj] = obj.cache_version


def flush() -> None:
    """Save every registered object that built panels since it was loaded or saved, merged with
    what another process stored meanwhile."""
    for obj in list(_registry):
        if obj.cache_version == _saved.get(obj):
            continue
        stored = load(obj.cache_key)
        if stored is not None:
            obj.cache_merge(stored)
        save(obj.cache_key, obj.cache_state())
        _saved[obj] = obj.cache_version


def persisted(function):
    """Wrap a numeric entry point: when the outermost such call returns (or raises), the tables
    it built are saved (:func:`flush`) — once per call, not at every panel."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        try:
            return function(*args, **kwargs)
        finally:
            _depth.value = depth
            if depth == 0:
                flush()

    return wrapper
