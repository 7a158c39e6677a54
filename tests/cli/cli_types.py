"""Types of the fixtures in this folder's conftest (importable by the tests, unlike a conftest)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

#: ``run(*args, env=None, timeout=300)``: one CLI command in a fresh process.
Run = Callable[..., subprocess.CompletedProcess[str]]
#: How many pages poppler has rendered so far.
Renders = Callable[[], int]
