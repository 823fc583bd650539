"""phextcc compile machinery: the progress bar of long compiles (stderr on a terminal only) and the
determinism the compile-speed work relies on (same source -> same .siw bytes)."""

from __future__ import annotations

import io

from vtpu_cli.binary.siwfile import encode
from vtpu_cli.compiler import compile_phx, driver

SRC = "input x: f32[8, 64]\nweight w: f32[64, 32]\noutput y: f32[8, 32]\ny = matmul(x, w)\n"


def test_progress_is_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    bar = driver.CompileProgress("t.phx")
    assert not bar.enabled and bar.timer is None
    bar.close()


def test_progress_bar_phases_and_nested_compiles(monkeypatch):
    seen = []
    orig = driver.CompileProgress.__call__

    def spy(self, phase, frac=0.0):
        orig(self, phase, frac)
        seen.append((phase, self.pct if self.enabled else None))

    monkeypatch.setattr(driver.CompileProgress, "__call__", spy)
    monkeypatch.setattr(driver, "PROGRESS_DELAY_S", 0.0)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    outer = driver.CompileProgress("outer.phx", enabled=True, delay=10.0)
    inner = driver.CompileProgress("inner.phx", enabled=True)  # a nested compile shares the outer bar
    assert outer.enabled and not inner.enabled
    inner.close()
    outer.close()
    assert not driver.CompileProgress._active
    prog, _ = compile_phx(SRC, "t.phx", progress=True)
    phases = [p for p, _ in seen]
    assert phases == ["lower", "allocate", "schedule", "encode"]
    pcts = [p for _, p in seen]
    assert pcts == sorted(pcts) and pcts[-1] == 97
    assert not driver.CompileProgress._active
    assert encode(prog) == encode(compile_phx(SRC, "t.phx", progress=False)[0])


def test_compile_is_deterministic():
    a = [encode(compile_phx(SRC, "t.phx", opt=o)[0]) for o in (0, 3)]
    b = [encode(compile_phx(SRC, "t.phx", opt=o)[0]) for o in (0, 3)]
    assert a == b
