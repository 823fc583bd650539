"""``attend(..., shard=heads)`` when a sentron's head range cuts a KV group (20 heads of 5 groups on two
sentrons: heads 0-9 run in batches 4, 4, 2): each run of equal batches is a coordinate-register region
of its own. In one region the cut part took a slow PPT translation per head and token (a 2B-shaped
prefill: ~19k per sentron). The count is deterministic, so the test pins it, and the result stays
bit-identical to one sentron.
"""

from __future__ import annotations

import numpy as np
import pytest

from vtpu_cli.compiler import compile_phx
from vtpu_cli.compiler.driver import bind_inputs, read_output

T, H, KVH, HD, CTX = 16, 20, 5, 128, 64
QD, KVD = H * HD, KVH * HD

SRC = f"""
input q: f32[{T}, {QD}]
input kv: f32[{2 * CTX}, {KVD}]
weight w: t2[{QD}, 16]
output o: f32[{T}, {QD}]
output y: f32[1, 16]
kernel k {{
  o = attend(q, slice(kv, 0, {CTX}), slice(kv, {CTX}, {CTX}), {T}, heads={H}, kv_heads={KVH}SHARD)
  y = tmatmul(slice(o, 0, 1), w)
}}
"""


def _run(shard: str, sentrons: int) -> tuple[np.ndarray, int]:
    """(o, slow-path PPT translations of the run) on the JIT."""
    from vtpu_cli.engines.jit.engine import JitEngine

    prog, _ = compile_phx(SRC.replace("SHARD", shard), "att.phx", opt=2, force_loops=True, sentrons=sentrons)
    rng = np.random.default_rng(1)
    bind_inputs(
        prog,
        {
            "q": rng.standard_normal((T, QD)).astype(np.float32),
            "kv": rng.standard_normal((2 * CTX, KVD)).astype(np.float32),
            "w": rng.integers(-1, 2, (QD, 16), dtype=np.int8),
        },
    )
    eng = JitEngine(prog, sentrons)
    res = eng.run()
    assert res.status == "ok" and res.engine == "jit", res.fallback
    return read_output(prog, res, "o"), eng.mem.stats.hits + eng.mem.stats.misses - res.ppt_fast_hits


@pytest.mark.slow
def test_sharded_attend_cutting_a_kv_group_stays_on_the_fast_path():
    one, slow1 = _run("", 1)
    two, slow2 = _run(", shard=heads", 2)
    assert np.array_equal(one, two)
    # one region per sentron range: 354 here (a translation per head and token of the cut batch);
    # one region per run of equal batches: 52 (each region defines its coordinates once)
    assert slow2 < 120, (slow1, slow2)
