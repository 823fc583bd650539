"""Sentron fleet: collectives equal numpy for every size and type, deadlocks, races, routing, determinism."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import PROGRAMS

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.core import coords
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.fleet.topology import parse_topology

FLEET = PROGRAMS / "fleet"
NP = {"f32": np.float32, "i32": np.int32, "i64": np.int64}


def run(text: str, n: int, **kw):
    return Interpreter(assemble(text, "t.vasm"), n, **kw).run()


def per_sentron_data(values: np.ndarray, t: str) -> str:
    """One 64-byte scroll per sentron at its home coordinate."""
    lines = []
    for i, row in enumerate(values):
        lines.append(
            f'.data {coords.format_packed(coords.home_packed(i))} u8 hex "{row.astype(NP[t]).tobytes().hex()}"'
        )
    return "\n".join(lines)


def reference(values: np.ndarray, op: str, t: str) -> np.ndarray:
    arrs = [v.astype(NP[t]) for v in values]
    fn = {"add": np.add, "min": np.minimum, "max": np.maximum}[op]
    with np.errstate(over="ignore"):
        return functools.reduce(lambda a, b: fn(a, b).astype(NP[t]), arrs)  # ascending id, left to right


@pytest.mark.parametrize("n", range(1, 17))
def test_creduce_equals_numpy_for_every_type_and_op(n):
    rng = np.random.default_rng(n)
    for t in ("f32", "i32", "i64"):
        lanes = 64 // np.dtype(NP[t]).itemsize
        if t == "f32":
            vals = rng.standard_normal((n, lanes)).astype(np.float32) * 1e3
        else:
            info = np.iinfo(NP[t])
            vals = rng.integers(info.min, info.max, (n, lanes), dtype=NP[t])  # sums overflow: must wrap
        for op in ("add", "min", "max"):
            src = (
                per_sentron_data(vals, t)
                + f"""
    SCOORD p0, home
    SGATHER.{t} v0, [p0]
    SGATHER.{t} r1, [p0 + 8]
                                  |                    | CREDUCE.{op}.{t} v1, v0, all
                                  |                    | CREDUCE.{op}.{t} r2, r1, all
"""
            )
            res = run(src, n)
            assert res.status == "ok", res.fault
            want = reference(vals, op, t)
            scalar_idx = 8 // np.dtype(NP[t]).itemsize
            for s in res.sentrons:
                assert s.view(t)[1].tobytes() == want.tobytes(), (t, op, s.id)
                got = np.array([s.R[2] & ((1 << (8 * np.dtype(NP[t]).itemsize)) - 1)], np.uint64)
                assert got.astype(f"<u{np.dtype(NP[t]).itemsize}").view(NP[t])[0] == want[scalar_idx] or (
                    t == "f32" and np.isnan(want[scalar_idx])
                )


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_ccast_and_groups(n):
    src = """
.group evens = 0..15:2
    DMOV r1, sid
    DBCAST.i32 v0, r1
    DMOV r3, scount
    DSUB r3, r3, 1                 ; root = the last sentron
                                   |                    | CCAST.i32 v1, v0, r3, all
    DAND r4, r1, 1
    DCMP.eq r9, r4, 0
    DBRF done
                                   |                    | CREDUCE.add.i32 v2, v0, evens
done:
"""
    text = src.replace("0..15:2", f"0..{max(n - 1, 0)}:2")
    res = run(text, n)
    assert res.status == "ok", res.fault
    evens = list(range(0, n, 2))
    for s in res.sentrons:
        assert (s.view("i32")[1] == n - 1).all()
        if s.id % 2 == 0:
            assert (s.view("i32")[2] == sum(evens)).all()


def test_example_collective_programs_for_all_sizes():
    for n in range(1, 17):
        for prog in ("ring_allreduce", "tree_broadcast"):
            res = Interpreter(assemble((FLEET / f"{prog}.vasm").read_text(), prog), n).run()
            assert res.status == "ok", (prog, n, res.fault)
            assert all(s.R[8] == 1 for s in res.sentrons), (prog, n)
        ring = Interpreter(assemble((FLEET / "ring_allreduce.vasm").read_text(), "r"), n).run()
        want = np.arange(1, 17) * sum(range(1, n + 1))
        assert all((s.view("i32")[1] == want).all() for s in ring.sentrons)


def test_matmul_scatter_compute_gather_over_16_sentrons():
    prog = assemble((FLEET / "matmul_scatter.vasm").read_text(), "mm")
    res = Interpreter(prog, 16).run()
    assert res.status == "ok", res.fault
    a = np.frombuffer(prog.data[0].data, np.float32).reshape(16, 16)
    b = np.frombuffer(prog.data[1].data, np.float32).reshape(16, 16)
    c = np.frombuffer(res.memory.table[prog.coord_names["C"]].buf, np.float32).reshape(16, 16)
    assert np.array_equal(c, a @ b)
    assert res.fleet.stats.messages == 30


def test_double_buffered_pipeline():
    prog = assemble((FLEET / "pipeline.vasm").read_text(), "pipe")
    res = Interpreter(prog, 2).run()
    assert res.status == "ok", res.fault
    x = np.frombuffer(prog.data[0].data, np.float32)
    assert np.frombuffer(res.sentrons[1].R[1].to_bytes(4, "little"), np.float32)[0] == 3 * x.sum()
    # the steady-state SIWs really carry D, S and C work together
    full = [siw for siw in prog.code if all(not i.is_nop for i in siw)]
    assert len(full) == 6


@pytest.mark.timeout(60)
@pytest.mark.parametrize("prog,n", [("barrier_deadlock", 4), ("barrier_deadlock", 16)])
def test_deadlocks_are_reported_never_hang(prog, n):
    res = Interpreter(assemble((FLEET / f"{prog}.vasm").read_text(), prog), n).run()
    assert res.status == "deadlock"
    waits = {w["sentron"]: w for w in res.fault.waits}
    assert waits[0]["waits_in"] == "CRECV from any"
    assert all(
        waits[i]["waits_for"] == [0] and waits[i]["waits_in"] == "CBAR on group all" for i in range(1, n)
    )


def test_data_race_detected_and_synchronised_version_runs():
    bad = Interpreter(assemble((FLEET / "race.vasm").read_text(), "race"), 2).run()
    assert bad.status == "fault" and "data race" in bad.fault.message and bad.fault.sentron == 1
    good = Interpreter(assemble((FLEET / "race_fixed.vasm").read_text(), "race"), 2).run()
    assert good.status == "ok" and good.sentrons[1].R[4] == 42


@pytest.mark.parametrize("spec,n", [("ring", 8), ("torus:4x4", 16), ("twisted:2x2x4", 16)])
def test_croute_hops_follow_the_topology(spec, n):
    topo = parse_topology(spec, n)
    res = Interpreter(assemble((FLEET / "route.vasm").read_text(), "route"), n, topology=topo).run()
    assert res.status == "ok", res.fault
    assert res.sentrons[n - 1].R[6] == sum(range(n))
    assert res.fleet.stats.routed == n
    assert res.fleet.stats.hops == sum(topo.distance(i, n - 1) for i in range(n))


def test_runs_are_identical_across_repetitions():
    text = (FLEET / "matmul_scatter.vasm").read_text()
    outs = []
    for _ in range(3):
        res = Interpreter(assemble(text, "mm"), 16, trace=True).run()
        outs.append(
            (
                res.rounds,
                res.siws,
                [s.R[:] for s in res.sentrons],
                len(res.trace),
                bytes(res.memory.table[coords.parse_packed("1.1.4/1.1.1/1.1.3")].buf),
            )
        )
    assert outs[0] == outs[1] == outs[2]


def test_send_to_missing_sentron_faults():
    res = run("    DMOV r1, 5\n    CPACK.i64 m0, r1\n    CSEND m0, 5", 2)
    assert res.status == "fault" and "no sentron 5" in res.fault.message and res.fault.pipe == "C"
