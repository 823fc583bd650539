"""Compile a ``.phx`` source for N sentrons, run it on one engine and read its outputs: the helper the
multi-sentron tests share (a JIT run must really be native, and every run must end ``ok``)."""

from __future__ import annotations

import numpy as np

from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler.driver import bind_inputs, read_output
from vtpu_cli.engines.interp.interpreter import Interpreter


def run_phx(
    src: str, inputs: dict, outs: list[str], sentrons: int, engine: str = "interp", **kw
) -> dict[str, np.ndarray]:
    """Outputs ``outs`` by name after one run of ``src`` (compiled at -O2; ``kw`` goes to the compiler)."""
    prog, _ = compile_phx(src, "test.phx", opt=2, sentrons=sentrons, **kw)
    bind_inputs(prog, inputs)
    if engine == "jit":
        from vtpu_cli.engines.jit.engine import JitEngine

        res = JitEngine(prog, sentrons).run()
        assert res.engine == "jit" and not getattr(res, "replay", ""), res.fallback
    else:
        res = Interpreter(prog, sentrons).run()
    assert res.status == "ok", res.fault.render() if res.fault else res.status
    return {o: read_output(prog, res, o) for o in outs}
