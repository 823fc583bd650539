"""Shared test helpers."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "programs"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Every cache (converted model layouts, JIT objects, grammar tables, tile tuning) goes to a folder of this
# session, removed at its end: tests that run models must not write into the user's ~/.cache/vtpu, nor
# pass because of what an earlier run left there. A VTPU_CACHE_DIR set by the caller is kept (e.g. to
# reuse JIT objects across runs).
_SESSION_CACHE: str | None = None
if not os.environ.get("VTPU_CACHE_DIR"):
    _SESSION_CACHE = tempfile.mkdtemp(prefix="vtpu-test-cache-")
    os.environ["VTPU_CACHE_DIR"] = _SESSION_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("VTPU_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def run_src():
    """Assemble text and run it on the interpreter."""
    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.engines.interp.interpreter import Interpreter

    def _run(text: str, sentrons: int = 1, **kw):
        return Interpreter(assemble(text, "t.vasm"), sentrons, **kw).run()

    return _run


def interruptible() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell's background job (CI run
    with ``&``) starts with SIGINT ignored, the child would inherit that and Python would then install
    no KeyboardInterrupt handler; reset it to the default as an interactive shell would."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
