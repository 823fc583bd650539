"""Data races across ranks (docs/cluster.md, "Data races across ranks"): ``mpiexec -n R vtpu run`` exits
with the single-process run's code and report, on the interpreter ranks and on the JIT ranks, in both
memory modes; race-free sharing across ranks stays race-free (no false positives).

The merged happens-before check (``cluster/races.py``) is also tested without MPI against a brute-force
check over every pair of accesses of random executions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster import FLEET, ROOT, _in_process, _mpi_missing, _mpirun  # noqa: E402

from vtpu_cli.cluster import races  # noqa: E402

needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))

WAR = """\
; a write-after-read race: the last sentron loads S at once, sentron 0 stores into it a few SIWs later,
; with nothing ordering the two (in one process: a data race on the store)
.coord S = 1.1.1/1.1.1/1.1.1
.zero S i64 1
.output r4
    DMOV r1, sid                 | SCOORD p0, S
    DMOV r3, scount
    DSUB r3, r3, 1
    DCMP.eq r9, r1, r3
    DBRF writer
                                 | SGATHER.i64 r4, [p0]
    DHALT
writer:
    DCMP.eq r9, r1, 0
    DBRF end
    DMOV r2, 7
    DMOV r2, 8
    DMOV r2, 9
                                 | SSCATTR.i64 [p0], r2
end:
"""

SYNC = """\
; race-free sharing of one scroll across ranks: every sentron loads S, a CREDUCE orders those loads before
; sentron 0's store (write after read), a CBAR orders that store before everyone's second load (read
; after write), another CBAR orders those loads before a token that passes by message from sentron to
; sentron, each loading S, adding its id + 1 and storing it back (write after write, ordered by messages).
.coord S = 1.1.1/1.1.1/1.1.1
.data S i64 5
.output r4, r5, r6, r7, S
    DMOV r1, sid                 | SCOORD p0, S
    DMOV r7, 0                   | SGATHER.i64 r4, [p0]
                                 |                          | CREDUCE.add.i64 r5, r4, all
    DCMP.eq r9, r1, 0
    DBRF wait
                                 | SSCATTR.i64 [p0], r5
wait:
                                 |                          | CBAR all
                                 | SGATHER.i64 r6, [p0]
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRT first
    DSUB r2, r1, 1
                                 |                          | CRECV m0, r2
first:
                                 | SGATHER.i64 r7, [p0]
    DADD r7, r7, r1
    DADD r7, r7, 1
                                 | SSCATTR.i64 [p0], r7
    DMOV r3, scount
    DSUB r3, r3, 1
    DCMP.eq r9, r1, r3
    DBRT end
    DADD r2, r1, 1
                                 |                          | CPACK.i64 m1, r7
                                 |                          | CSEND m1, r2
end:
"""

ENGINES = ("interp", "jit")
CONFIGS = [(2, "homed"), (2, "replicated"), (4, "homed")]  # (ranks, memory mode): one mpiexec launch each


def _jobs(tmp: Path) -> list[list[str]]:
    (tmp / "war.vasm").write_text(WAR)
    (tmp / "sync.vasm").write_text(SYNC)
    f = str(FLEET)
    jobs = []
    for e in ENGINES:
        jobs += [
            ["run", f"{f}/race.vasm", "-n", "4", "--json", "--engine", e],  # read after write
            ["run", str(ROOT / "programs" / "vadd.vasm"), "-n", "4", "--json", "--engine", e],  # write/write
            ["run", str(tmp / "war.vasm"), "-n", "4", "--json", "--engine", e],  # write after read
            ["run", str(tmp / "sync.vasm"), "-n", "4", "--json", "--stats", "--engine", e],  # race-free
            ["run", f"{f}/race_fixed.vasm", "-n", "4", "--json", "--engine", e],  # race-free (CBAR)
            ["run", f"{f}/race.vasm", "-n", "4", "--engine", e],  # the text report, byte for byte
        ]
    return jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    if _mpi_missing():
        pytest.skip(_mpi_missing())
    tmp = tmp_path_factory.mktemp("cluster_race")
    jobs = _jobs(tmp)
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    driver = str(Path(__file__).parent / "test_cluster.py")
    got = {}
    for ranks, mode in CONFIGS:
        out = tmp / f"out{ranks}{mode}.json"
        p = _mpirun(
            ranks,
            [driver, "--driver", str(tmp / "jobs.json"), str(out)],
            timeout=300,
            env={"VTPU_CLUSTER_MEMORY": mode},
        )
        assert p.returncode in (0, 1), p.stderr[-3000:]
        got[ranks, mode] = json.loads(out.read_text())
    # the reference: one process on the interpreter (the golden model; the JIT replays races in it)
    ref = [_in_process([a for a in argv if a not in ENGINES and a != "--engine"]) for argv in jobs]
    return {"jobs": jobs, "got": got, "ref": ref}


@needs_mpi
@pytest.mark.parametrize(("ranks", "mode"), CONFIGS)
def test_races_across_ranks_are_reported_as_in_one_process(runs: dict, ranks: int, mode: str) -> None:
    for argv, (rc, out), got in zip(runs["jobs"], runs["ref"], runs["got"][ranks, mode], strict=True):
        name = " ".join(Path(a).name for a in argv[1:])
        assert got["rc"] == rc, (name, got["stderr"][-2000:])
        racy = Path(argv[1]).stem in ("race", "vadd", "war")
        if "interp" in argv:  # the interpreter ranks' check is exact: no rerun for a race-free program
            assert ("a data race across ranks" in got["stderr"]) == racy, (name, got["stderr"][-2000:])
        if "--json" not in argv:
            assert got["stdout"] == out, name
            continue
        a, b = json.loads(out), json.loads(got["stdout"])
        assert (b["status"], b["fault"]) == (a["status"], a["fault"]), name
        assert b["outputs"] == a["outputs"], name
        if "--stats" in argv and a["status"] == "ok":
            assert b["stats"]["fleet"]["messages"] == a["stats"]["fleet"]["messages"], name


@needs_mpi
def test_the_reference_runs_race_where_the_names_say(runs: dict) -> None:
    """Guard the comparison: the racy jobs fault with a data race in one process, the others do not."""
    for argv, (rc, out) in zip(runs["jobs"], runs["ref"], strict=True):
        if "--json" not in argv:
            continue
        res = json.loads(out)
        racy = Path(argv[1]).stem in ("race", "vadd", "war")
        assert rc == (1 if racy else 0), argv
        assert (res["fault"] is not None and res["fault"]["message"].startswith("data race")) == racy
    war = json.loads(runs["ref"][2][1])["fault"]["message"]
    assert "which sentron 3 read without synchronising with sentron 0" in war


# --------------------------------------------------------------------------- the merged check, no MPI
EVENT = st.one_of(
    st.tuples(st.just("access"), st.integers(0, 2), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("msg"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("fence"), st.integers(0, 2)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENT, max_size=30), st.integers(1, 3))
def test_merged_check_finds_a_race_exactly_when_a_pair_is_unordered(events: list, ranks: int) -> None:
    """Random executions of 3 sentrons (accesses to 2 scrolls, messages, fences) with the C pipe's clock
    rules: ``find_race`` over per-rank compressed records agrees with the check of every pair."""
    n = 3
    clock = [[1 if i == j else 0 for j in range(n)] for i in range(n)]
    accesses = []
    logs: list[races.AccessLog] = [{} for _ in range(ranks)]
    for ev in events:
        if ev[0] == "access":
            _, sid, coord, write = ev
            accesses.append((sid, coord, write, clock[sid][sid], tuple(clock[sid])))
            races.record(logs[sid % ranks], coord, sid, write, clock[sid])
        elif ev[0] == "msg":
            _, src, dst = ev
            if src == dst:
                continue
            snap = list(clock[src])
            clock[src][src] += 1
            clock[dst] = [max(x, y) for x, y in zip(clock[dst], snap, strict=True)]
        else:
            clock[ev[1]][ev[1]] += 1
    brute = any(
        a[0] != b[0] and a[1] == b[1] and (a[2] or b[2]) and b[4][a[0]] < a[3]
        for i, a in enumerate(accesses)
        for b in accesses[i + 1 :]
    )
    found = races.find_race([races.entries(log) for log in logs])
    assert (found is not None) == brute, (events, found)


def test_merged_check_examples() -> None:
    # sentron 0 stores at epoch 1 and releases to 1 (which then knows 0's epoch 1): ordered
    ordered = [[(7, 0, True, 1, (1, 0))], [(7, 1, False, 1, (1, 1))]]
    assert races.find_race(ordered) is None
    # sentron 1 loads knowing nothing of 0: a race on scroll 7 between 1 and 0
    assert races.find_race([[(7, 0, True, 1, (1, 0))], [(7, 1, False, 1, (0, 1))]]) == (7, 1, 0)
    # loads only never race
    assert races.find_race([[(7, 0, False, 1, (1, 0))], [(7, 1, False, 1, (0, 1))]]) is None


def test_start_image_copies_only_what_is_written_and_restores_it() -> None:
    """The golden rerun's start memory: a scroll written in place is copied once, just before the write;
    a read-only scroll is never copied; freeing and allocating are undone."""
    import numpy as np

    from vtpu_cli.machine.memory import Memory, scroll_buffer

    mem = Memory()
    a = mem.add(1, scroll_buffer(64, bytes(range(64))), dtype="u8", shape=(64,), align=64, owner=0)
    mem.add(2, scroll_buffer(4096, bytes(4096)), dtype="u8", shape=(4096,), align=64, owner=0)
    img = races.StartImage(mem)
    img.before_write(a.buf)
    a.buf[:8] = 255
    img.before_write(a.buf)  # a second write copies nothing more
    a.writer, a.write_epoch = 3, 7
    mem.free(2)
    mem.add(9, scroll_buffer(8, bytes(8)), dtype="u8", shape=(8,), align=64, owner=0)
    assert img.copied == 64
    img.restore(mem)
    assert sorted(mem.table) == [1, 2]
    assert np.array_equal(mem.table[1].buf, np.arange(64, dtype=np.uint8))
    assert mem.table[1].writer != 3
    assert mem.table[2].size == 4096


CKRACE = """\
; two barriers (a checkpoint at each), then the race of race.vasm
.coord S = 1.1.1/1.1.1/1.1.1
.zero S i64 1
.output r4
    DMOV r1, sid                 | SCOORD p0, S
                                 |                          | CBAR all
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF reader
    DMOV r2, 42
                                 | SSCATTR.i64 [p0], r2
    DHALT
reader:
    DMOV r3, 1
    DMOV r3, 2
                                 | SGATHER.i64 r4, [p0]
"""


@needs_mpi
def test_a_race_after_a_checkpoint_is_reported_as_a_one_process_resume(tmp_path: Path, monkeypatch) -> None:
    prog, ck = tmp_path / "ckrace.vasm", tmp_path / "ck"
    prog.write_text(CKRACE)
    argv = ["run", str(prog), "-n", "4"]
    rc0, out0 = _in_process(argv)
    run = ["-m", "vtpu_cli.cli.main", *argv]
    p = _mpirun(2, run, env={"VTPU_CHECKPOINT": str(ck), "VTPU_CHECKPOINT_EVERY": "1"})
    assert (p.returncode, p.stdout) == (rc0, out0) and rc0 == 1, p.stderr[-2000:]
    assert "a data race across ranks" in p.stderr
    monkeypatch.setenv("VTPU_RESUME", str(ck))
    rc1, out1 = _in_process(argv)
    p = _mpirun(2, run, env={"VTPU_RESUME": str(ck)})
    assert (p.returncode, p.stdout) == (rc1, out1) and rc1 == 1, p.stderr[-2000:]
