"""Test-session settings: the on-disk table cache (derive.gaussian.cache) is off unless a run
asks for it (DERIVE_CACHE=1), so that no test depends on what an earlier run stored."""

import os

os.environ.setdefault("DERIVE_CACHE", "0")
