"""core/buffers: aligned buffers, and the guard mode (VTPU_GUARD_ALLOC) that makes a stray native write
fault where it happens -- checked by making one, in a child process."""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vtpu_cli.core import buffers


@pytest.mark.parametrize("guard", ["0", "1"])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 4096, 10_000])
def test_aligned_zeros(monkeypatch, guard, n):
    monkeypatch.setenv(buffers.GUARD_ENV, guard)
    a = buffers.aligned_zeros(n)
    assert a.shape == (n,) and a.dtype == np.uint8 and a.ctypes.data % 64 == 0
    assert not a.any()
    a[:] = 7  # writable end to end
    for align in (False, True):
        z = buffers.zeros((3, 4), np.uint64, align)
        assert z.shape == (3, 4) and z.dtype == np.uint64 and not z.any()
        assert z.ctypes.data % 64 == 0 or not (align or guard == "1")
        c = buffers.copy(np.arange(12, dtype=np.uint64).reshape(3, 4), align)
        assert c.tolist() == np.arange(12).reshape(3, 4).tolist()
        assert c.ctypes.data % 64 == 0 or not (align or guard == "1")


def _child(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import ctypes, gc, os
        os.environ["VTPU_GUARD_ALLOC"] = "1"
        from vtpu_cli.core import buffers
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_guard_faults_on_overflow():
    ok = _child("a = buffers.aligned_zeros(128)\nctypes.memset(a.ctypes.data, 1, 128)\nprint('inside ok')")
    assert ok.returncode == 0 and b"inside ok" in ok.stdout
    p = _child(
        "a = buffers.aligned_zeros(128)\nctypes.memset(a.ctypes.data + 128, 1, 1)\nprint('not reached')"
    )
    assert p.returncode == -signal.SIGSEGV and b"not reached" not in p.stdout
    # a whole page starts on the guard before it (smaller buffers sit at the end of their page)
    p = _child(
        "a = buffers.aligned_zeros(4096)\nctypes.memset(a.ctypes.data - 1, 1, 1)\nprint('not reached')"
    )
    assert p.returncode == -signal.SIGSEGV


def test_guard_faults_on_write_after_free():
    p = _child(
        """
        a = buffers.zeros(16, "u8")[4:]  # a view keeps the buffer alive
        addr = a.ctypes.data
        ctypes.memset(addr, 1, 8)
        del a
        gc.collect()
        print("freed", flush=True)
        ctypes.memset(addr, 1, 8)
        print("not reached")
        """
    )
    assert p.returncode == -signal.SIGSEGV and b"freed" in p.stdout and b"not reached" not in p.stdout
