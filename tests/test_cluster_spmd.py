"""SPMD runs under mpiexec (``cluster/spmd.py``): one rerunnable program run many times on every rank,
each rank running its share of the sentrons on the JIT, every rank ending each run with the whole
run's memory -- what a model's decode loop (``vtpu generate --sentrons 2`` under ``mpiexec -n 2``) needs.

One ``mpiexec`` launch runs the driver below on every rank; each rank writes what it saw to a file of its
own, and the test compares every rank's outputs, run by run, with the same runs in one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster import ROOT, _mpi_missing, _mpirun  # noqa: E402

needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))

RUNS = 5

# Each run: sentron s adds X * (s + 1) to its own accumulator (A0 or A1, kept between runs), the sentrons
# meet at a barrier, and sentron 0 writes A0 + A1 to OUT: a store on the other rank seen after the
# barrier, state carried from run to run, an output written on rank 0 that every rank must see.
ACCUM = """\
.coord A0 = 1.1.1/1.1.1/1.1.1
.coord A1 = 1.1.1/1.1.1/1.1.2
.coord X = 1.1.1/1.1.1/1.1.3
.coord OUT = 1.1.1/1.1.1/1.1.4
.zero A0 i64 1
.zero A1 i64 1
.zero X i64 1
.zero OUT i64 1
.output r4
    DMOV r1, sid                 | SCOORD p0, A0
    DCMP.eq r9, r1, 0            | SCOORD p1, X
    DBRT mine
                                 | SCOORD p0, A1
mine:
                                 | SGATHER.i64 r3, [p1]
    DADD r5, r1, 1
    DMUL r3, r3, r5
                                 | SGATHER.i64 r6, [p0]
    DADD r6, r6, r3
                                 | SSCATTR.i64 [p0], r6
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0            | SCOORD p0, A0
    DBRF end
                                 | SGATHER.i64 r7, [p0]
                                 | SCOORD p0, A1
                                 | SGATHER.i64 r8, [p0]
    DADD r4, r7, r8              | SCOORD p2, OUT
                                 | SSCATTR.i64 [p2], r4
end:
"""

# A phextcc program compiled for two sentrons (each computes half of the columns), with a declared weight
M, K, N = 2, 40, 70
SHARDED = f"""input x: f32[{M},{K}]
weight wt: t2[{K},{N}] scale 0.5
output y: f32[{M},{N}]
h = tmatmul(x, wt, shard=cols)
y = relu(h)
"""


def _programs():
    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.compiler import bind_inputs, compile_phx

    accum = assemble(ACCUM, "accum.vasm")
    sharded, _ = compile_phx(SHARDED, "sharded.phx", opt=3, sentrons=2)
    x0 = np.zeros((M, K), np.float32)
    wt = np.random.default_rng(5).integers(-1, 2, (K, N)).astype(np.int8)
    bind_inputs(sharded, {"x": x0, "wt": wt})
    return accum, sharded


def _inputs(k: int) -> np.ndarray:
    return np.random.default_rng(100 + k).standard_normal((M, K)).astype(np.float32)


def play(local: bool, cache_dir: str) -> dict:
    """Run both programs RUNS times with changing inputs; what every run left in memory, per program.
    ``local``: the single-process engine (the reference), else whatever ``open_engine`` gives."""
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions, open_engine, open_local_engine

    accum, sharded = _programs()
    out: dict = {"engines": []}
    opener = open_local_engine if local else open_engine
    for name, prog, inp, outs in (
        ("accum", accum, "X", ("A0", "A1", "OUT")),
        ("sharded", sharded, "x", ("y",)),
    ):
        from vtpu_cli.machine.memory import Memory

        mem = Memory()
        load_memory(prog, mem)
        names = prog.coord_names
        opts = EngineOptions(engine="jit", sentrons=2, rerunnable=True, cache_dir=cache_dir)
        eng = opener(prog, mem, opts)
        seen = []
        for k in range(RUNS):
            buf = mem.table[names[inp]].buf
            if name == "accum":
                buf[:] = np.array([k + 1], np.int64).view(np.uint8)
            else:
                buf[:] = _inputs(k).view(np.uint8).reshape(-1)
            res = eng.run()
            assert res.status == "ok", res.status
            out["engines"].append([res.engine, res.fallback, type(eng).__name__])
            cl = getattr(res, "cluster", None)  # rank 0 of a cluster run: how many ranks shared it
            out.setdefault("ranks", []).append(cl["ranks"] if cl else None)
            seen.append({o: mem.table[names[o]].buf.tobytes().hex() for o in outs})
        out[name] = seen
    return out


# a program the JIT ranks cannot share (it allocates a scroll): every rank runs both sentrons itself
ALLOC = """\
.coord H = 1.1.1/1.1.1/1.1.9
.output r5
    DMOV r1, sid                 | SCOORD p0, H
    DMOV r3, 64
    DCMP.eq r9, r1, 1
    DBRF wait
    DMOV r2, 7
                                 | SALLOC p0, r3
                                 | SSCATTR.i64 [p0 + 8], r2
wait:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF end
                                 | SGATHER.i64 r5, [p0 + 8]
end:
"""


def fallback_run(cache_dir: str) -> list:
    """The ALLOC program through ``open_engine``, opened afresh per run as a model opens a fallback."""
    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions, open_engine
    from vtpu_cli.machine.memory import Memory

    prog = assemble(ALLOC, "alloc.vasm")
    out = []
    for _ in range(2):
        mem = Memory()
        load_memory(prog, mem)
        res = open_engine(prog, mem, EngineOptions(sentrons=2, rerunnable=True, cache_dir=cache_dir)).run()
        out.append([res.status, res.engine, res.fallback, res.sentrons[0].R[5]])
    return out


def threaded_open(cache_dir: str, rank: int) -> list:
    """Engines opened from two threads at once, started in opposite orders on the two ranks (as a model
    opens its variants): one program the JIT ranks share, one they cannot; then each run once."""
    import threading

    from vtpu_cli.asm.assembler import assemble
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions, open_engine
    from vtpu_cli.machine.memory import Memory

    progs = {"accum": _programs()[0], "alloc": assemble(ALLOC, "alloc.vasm")}
    engines: dict = {}

    def op(name: str) -> None:
        mem = Memory()
        load_memory(progs[name], mem)
        engines[name] = open_engine(
            progs[name], mem, EngineOptions(sentrons=2, rerunnable=True, cache_dir=cache_dir)
        )

    names = ["accum", "alloc"] if rank == 0 else ["alloc", "accum"]
    threads = [threading.Thread(target=op, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = []
    for name in ("accum", "alloc"):
        res = engines[name].run()
        out.append([name, type(engines[name]).__name__, res.status, res.engine])
    return out


def driver(out_dir: str, cache_dir: str) -> None:
    """Under mpiexec: every rank plays the runs through ``open_engine`` (the SPMD engine) and writes them."""
    import vtpu_cli.cluster.spmd  # noqa: F401 - registers the rank engine, as the model code does
    from vtpu_cli.cluster.env import world_size_from_env

    rank = int(__import__("os").environ.get("PMI_RANK", "0"))
    got = play(local=False, cache_dir=cache_dir)
    got["size"] = world_size_from_env()
    got["fallback"] = fallback_run(cache_dir)
    got["threaded"] = threaded_open(cache_dir, rank)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(got))


@needs_mpi
@pytest.mark.parametrize("ranks", [2])
def test_spmd_runs_match_one_process_on_every_rank(tmp_path: Path, ranks: int) -> None:
    cache = str(tmp_path / "jit")
    want = play(local=True, cache_dir=cache)
    p = _mpirun(ranks, [str(Path(__file__)), "--driver", str(tmp_path), cache], timeout=240)
    assert p.returncode == 0, p.stderr[-2000:] + p.stdout[-2000:]
    for r in range(ranks):
        got = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert got["size"] == ranks
        # every run natively on the SPMD engine, no fallback, on every rank
        assert {tuple(e) for e in got["engines"]} == {("jit", None, "SpmdEngine")}, got["engines"]
        assert got["ranks"] == [ranks if r == 0 else None] * (2 * RUNS)  # each run was spread over the ranks
        assert got["accum"] == want["accum"], f"rank {r}"
        assert got["sharded"] == want["sharded"], f"rank {r}"
        # the JIT ranks cannot share the SALLOC program; every rank's own JIT runs both sentrons natively
        assert got["threaded"] == [
            ["accum", "SpmdEngine", "ok", "jit"],
            ["alloc", "JitEngine", "ok", "jit"],
        ]
        for status, engine, why, r5 in got["fallback"]:
            assert (status, engine, why, r5) == ("ok", "jit", None, 7)
    # the reference is what the programs compute: ACC[s] = (s + 1) * (1 + ... + k), OUT their sum
    last = {k: np.frombuffer(bytes.fromhex(v), np.int64).tolist() for k, v in want["accum"][-1].items()}
    assert last == {"A0": [15], "A1": [30], "OUT": [45]}


def test_spmd_is_not_chosen_outside_mpiexec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mpiexec's variables (or for a program run once) the single-process engine runs."""
    from vtpu_cli.engines.select import EngineOptions, spmd_wanted

    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    assert not spmd_wanted(EngineOptions(sentrons=2, rerunnable=True))
    monkeypatch.setenv("PMI_SIZE", "2")
    assert spmd_wanted(EngineOptions(sentrons=2, rerunnable=True))
    assert not spmd_wanted(EngineOptions(sentrons=2))  # vtpu run has its own path under mpiexec
    assert not spmd_wanted(EngineOptions(sentrons=1, rerunnable=True))
    assert not spmd_wanted(EngineOptions(sentrons=2, rerunnable=True, trace=True))


def test_rank_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from vtpu_cli.cluster.env import RANK_VARS, rank_from_env

    for var in RANK_VARS:
        monkeypatch.delenv(var, raising=False)
    assert rank_from_env() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert rank_from_env() == 3


def test_weight_scrolls_get_no_twin() -> None:
    """Declared weights are never stored to: the twins leave them out (no copy of mapped weights)."""
    from vtpu_cli.cluster.bridge import ScrollTwins
    from vtpu_cli.cluster.spmd import weight_coords
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.machine.memory import Memory

    _, sharded = _programs()
    mem = Memory()
    load_memory(sharded, mem)
    wc = weight_coords(sharded)
    assert wc == {sharded.coord_names["wt"]}
    tw = ScrollTwins(mem, skip=wc)
    assert set(tw.twins) == set(mem.table) - wc
    y = mem.table[sharded.coord_names["y"]].buf
    y[4:8] = 7
    ((coord, starts, lengths, data),) = tw.diff()
    assert coord == sharded.coord_names["y"] and (starts.tolist(), lengths.tolist(), data) == (
        [4],
        [4],
        bytes([7] * 4),
    )
    assert tw.diff() == []  # the twin caught up


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_store_diffs_carry_exactly_the_changed_bytes(data) -> None:
    """Another rank's image, updated with this rank's diff, equals this rank's image; bytes this rank did
    not change are never sent (the other rank may have stored there)."""
    from vtpu_cli.cluster.bridge import ScrollTwins
    from vtpu_cli.machine.memory import Memory, scroll_buffer

    size = data.draw(st.integers(1, 300))
    start = bytes(data.draw(st.lists(st.integers(0, 255), min_size=size, max_size=size)))
    here, there = Memory(), Memory()
    for m in (here, there):
        m.add(7, scroll_buffer(size, start), dtype="u8", shape=(size,))
    mine, theirs = ScrollTwins(here), ScrollTwins(there)
    changed = data.draw(st.sets(st.integers(0, size - 1)))
    buf = here.table[7].buf
    for i in changed:
        buf[i] = data.draw(st.integers(0, 255))
    other = np.setdiff1d(np.arange(size), sorted(changed))  # bytes the other rank stored meanwhile
    there.table[7].buf[other] = 0xEE
    entries = mine.diff()
    assert ScrollTwins.size(entries) == sum(buf[i] != start[i] for i in changed)
    theirs.apply(entries)
    got = there.table[7].buf
    assert all(got[i] == buf[i] for i in changed)
    assert (got[other] == 0xEE).all()


PROMPT = "The quick brown fox jumps over the lazy dog and"


def generate_tokens(model: str, n: int) -> tuple[list[int], dict]:
    """Greedy tokens of ``vtpu generate MODEL --sentrons 2`` (JIT), and how its steps ran on this rank."""
    import contextlib
    import io

    from vtpu_cli.cluster import spmd
    from vtpu_cli.models.generate import generate_command

    seen: dict = {"spmd_runs": 0, "results": set()}
    orig = spmd.SpmdEngine.run

    def run(self):  # type: ignore[no-untyped-def]
        seen["spmd_runs"] += 1
        res = orig(self)
        seen["results"].add((res.status, res.engine, res.fallback))
        return res

    spmd.SpmdEngine.run = run  # type: ignore[method-assign]
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = generate_command(
                model, prompt=PROMPT, n=n, temp=0.0, ctx=128, sentrons=2, engine="jit", json_out=True
            )
    finally:
        spmd.SpmdEngine.run = orig  # type: ignore[method-assign]
    assert rc == 0
    seen["results"] = sorted(seen["results"], key=str)
    return json.loads(out.getvalue())["tokens"], seen


@needs_mpi
@pytest.mark.slow
def test_model_two_sentrons_on_two_ranks_same_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mpiexec -n 2 vtpu generate MODEL --sentrons 2`` (the step's two sentrons on two JIT ranks) gives
    the tokens of one process, on every rank. Slow: the 2-sentron step's native compile takes minutes on
    a loaded 2-core host (once; the ranks then load it from the JIT cache)."""
    pytest.importorskip("gguf")
    pytest.importorskip("tokenizers")
    from vtpu_cli.models.synth import SynthSpec, write_all

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    model = str(write_all(tmp_path / "m", SynthSpec())["tq2_0"])
    want, here = generate_tokens(model, 24)
    assert here["spmd_runs"] == 0 and len(want) == 24  # one process: the single-process engine
    p = _mpirun(2, [str(Path(__file__)), "--model-driver", model, str(tmp_path)], timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    for r in range(2):
        got = json.loads((tmp_path / f"model{r}.json").read_text())
        assert got["tokens"] == want, f"rank {r}"
        assert got["seen"]["spmd_runs"] >= 24  # the prompt and every decode step through the rank engine
        assert got["seen"]["results"] == [["ok", "jit", None]]


if __name__ == "__main__":
    if sys.argv[1] == "--driver":
        sys.path.insert(0, str(ROOT))
        driver(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--model-driver":
        import os

        tokens, seen = generate_tokens(sys.argv[2], 24)
        Path(sys.argv[3], f"model{os.environ.get('PMI_RANK', '0')}.json").write_text(
            json.dumps({"tokens": tokens, "seen": seen})
        )
