"""`mpiexec -n 2|4 vtpu run` with every rank's sentrons on the JIT (``cluster/bridge.py``).

Each job must give what one process gives on the interpreter (the golden model) -- exit code, status,
fault or deadlock report, outputs, and the exact counters of ``--stats`` -- and must have run natively:
``engine`` is ``jit`` with no fallback. One ``mpiexec`` launch per rank count runs every job (the driver of
``test_cluster.py``), so the MPI start-up is paid once.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_cluster import (  # noqa: E402
    COLLECTIVES,
    FAULT,
    FLEET,
    ROOT,
    SAME_FLEET,
    SAME_STATS,
    _in_process,
    _mpi_missing,
    _mpirun,
)

needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))

STREAM = """\
; point to point across ranks, past the queue capacity: sentron 0 streams 100 messages to the last
; sentron (CSEND blocks on the full queue until credits come back), which sums them; every other sentron
; sends its id to sentron 0, which takes them from any sender and sums ids and rSender.
.const COUNT = 100
.output r6, r7, r11, r12
    DMOV r1, sid
    DMOV r4, scount
    DSUB r5, r4, 1
    DMOV r6, 0
    DMOV r7, 0
    DMOV r11, 0
    DMOV r12, 0
    DCMP.eq r9, r1, 0
    DBRF notfirst
    DMOV r2, COUNT
send:
    DMUL r3, r2, 7
                                 |                          | CPACK.i64 m0, r3
                                 |                          | CSEND m0, r5
    DLOOP r2, send
    DMOV r2, r5
take:
                                 |                          | CRECV m1, -1, r13
                                 |                          | CUNPACK.i64 r14, m1
    DADD r11, r11, r14
    DADD r12, r12, r13
    DLOOP r2, take
    DJMP last
notfirst:
                                 |                          | CPACK.i64 m0, r1
                                 |                          | CSEND m0, 0
last:
    DCMP.eq r9, r1, r5
    DBRF end
    DMOV r2, COUNT
recv:
                                 |                          | CRECV m1, 0
                                 |                          | CUNPACK.i64 r8, m1
    DADD r6, r6, r8
    DADD r7, r7, 1
    DLOOP r2, recv
end:
"""

MISMATCH = """\
; sentron 1 enters a barrier where the others enter a reduction: the native C pipe leaves the report to
; the golden model (a replay on the interpreter). (Sentron 1 meets sentron 0's record on its own rank:
; which member is named does not depend on timing across ranks.)
.output r2
    DMOV r1, sid
    DCMP.eq r9, r1, 1
    DBRF reduce
                                 |                          | CBAR all
    DHALT
reduce:
                                 |                          | CREDUCE.add.i64 r2, r1, all
"""

DEADLOCK_P2P = """\
; every sentron receives from its right neighbour before sending: a cycle of waits across both ranks
.output r3
    DMOV r1, sid
    DMOV r4, scount
    DADD r2, r1, 1
    DCMP.eq r9, r2, r4
    DBRF ok
    DMOV r2, 0
ok:
                                 |                          | CRECV m1, r2
                                 |                          | CPACK.i64 m0, r1
                                 |                          | CSEND m0, r2
"""

ROWS = """\
; stores across ranks, ordered: a token goes around the ring and each sentron stores its element of one
; scroll when it holds the token (the elements of one scroll are written on both ranks); the token comes
; back to sentron 0, which sums the scroll; the scroll is an output (rank 0's merged image)
.coord OUT = 1.1.1/1.1.1/1.1.1
.zero OUT i64 16
.output OUT, r7
    DMOV r1, sid                 | SCOORD p0, OUT
    DMOV r4, scount
    DADD r8, r1, 1
    DCMP.eq r9, r8, r4
    DBRF right
    DMOV r8, 0
right:
    DMUL r2, r1, 8
    DADD r3, r1, 100
    DMOV r7, 0
    DCMP.eq r9, r1, 0
    DBRT first
    DSUB r10, r1, 1
                                 |                          | CRECV m1, r10
first:
                                 | SSCATTR.i64 [p0 + r2], r3
                                 |                          | CPACK.i64 m0, r3
                                 |                          | CSEND m0, r8
    DCMP.eq r9, r1, 0
    DBRF end
    DSUB r10, r4, 1
                                 |                          | CRECV m1, r10
    DMOV r5, 0
sum:
                                 | SGATHER.i64 r6, [p0 + r5]
    DADD r7, r7, r6
    DADD r5, r5, 8
    DLOOP r4, sum
end:
"""

CHAIN = """\
; a store travels with causality: sentron 0 stores and messages the last sentron, which forwards the
; message to sentron 1, which loads (at 3 ranks the store and the last message come from different ranks)
.coord Y = 1.1.1/1.1.1/1.1.1
.zero Y i64 1
.output r5
    DMOV r1, sid                 | SCOORD p0, Y
    DMOV r5, 0
    DMOV r4, scount
    DSUB r4, r4, 1
    DCMP.eq r9, r1, 0
    DBRF mid
    DMOV r2, 77
                                 | SSCATTR.i64 [p0], r2
                                 |                          | CPACK.i64 m0, r2
                                 |                          | CSEND m0, r4
    DHALT
mid:
    DCMP.eq r9, r1, r4
    DBRF tail
                                 |                          | CRECV m1, 0
                                 |                          | CSEND m1, 1
    DHALT
tail:
    DCMP.eq r9, r1, 1
    DBRF end
                                 |                          | CRECV m1, r4
                                 | SGATHER.i64 r5, [p0]
end:
"""

STORE_FAULT = """\
; sentron 0 stores twice, a barrier, then sentron 3 loads past the end: the replay on the interpreter must
; start from the memory the native run started from (the scroll is an output of the faulted run)
.coord S = 1.1.1/1.1.1/1.1.1
.zero S i64 8
.output S
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 0
    DBRF stored
                                 | SGATHER.i64 r3, [p0 + 8]
    DADD r3, r3, 5
                                 | SSCATTR.i64 [p0 + 8], r3
                                 | SSCATTR.i64 [p0 + 16], r3
stored:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 3
    DBRF wait
    DMOV r2, 64
                                 | SGATHER.i64 r4, [p0 + r2]
wait:
                                 |                          | CBAR all
"""


def _jobs(tmp: Path) -> list[list[str]]:
    for name, text in (
        ("stream", STREAM),
        ("collectives", COLLECTIVES),
        ("fault", FAULT),
        ("mismatch", MISMATCH),
        ("deadlock_p2p", DEADLOCK_P2P),
        ("rows", ROWS),
        ("chain", CHAIN),
        ("store_fault", STORE_FAULT),
    ):
        (tmp / f"{name}.vasm").write_text(text)
    f, t = str(FLEET), str(tmp)
    return [
        ["run", f"{f}/ring_allreduce.vasm", "-n", "4", "--json", "--stats"],  # ring all-reduce
        ["run", f"{f}/ring_allreduce.vasm", "-n", "5", "--json", "--stats"],  # uneven blocks
        ["run", f"{t}/stream.vasm", "-n", "4", "--json", "--stats"],  # point to point, credits, any
        ["run", f"{f}/route.vasm", "-n", "8", "--topology", "torus:2x4", "--json", "--stats"],  # CROUTE
        ["run", f"{t}/collectives.vasm", "-n", "8", "--json", "--stats"],  # CREDUCE order, CCAST, groups
        ["run", f"{t}/fault.vasm", "-n", "4", "--json"],  # a fault on rank 1
        ["run", f"{f}/barrier_deadlock.vasm", "-n", "4", "--json"],  # a deadlock with the wait graph
        ["run", f"{t}/deadlock_p2p.vasm", "-n", "4", "--json"],  # a cycle of CRECVs across ranks
        ["run", f"{t}/mismatch.vasm", "-n", "4", "--json"],  # collective kinds disagree
        ["run", f"{t}/rows.vasm", "-n", "8", "--json", "--stats"],  # stores: byte-level replication
        ["run", f"{t}/chain.vasm", "-n", "3", "--json"],  # a store ordered by a forwarded message
        ["run", f"{t}/store_fault.vasm", "-n", "4", "--json"],  # stores, then a fault: replayed
        ["run", f"{f}/race_fixed.vasm", "-n", "2", "--json"],  # stores ordered by messages
        ["run", f"{f}/ring_allreduce.vasm", "-n", "4", "--max-steps", "40", "--json"],  # shares of the limit
        ["run", f"{f}/tree_broadcast.vasm", "-n", "8"],  # the text report, byte for byte
        [
            "run",
            str(ROOT / "programs" / "dot.vasm"),
            "-n",
            "1",
            "--json",
            "--stats",
        ],  # a rank without sentrons
    ]


RANKS = (2, 4)  # one mpiexec launch each; 4 ranks on a 2-core host: oversubscribed


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    if _mpi_missing():
        pytest.skip(_mpi_missing())
    tmp = tmp_path_factory.mktemp("cluster_jit")
    jobs = _jobs(tmp)
    got = {}
    for ranks in RANKS:
        # with one sentron per rank, which member a collective mismatch names depends on timing
        mine = [j for j in jobs if not (ranks > 2 and "mismatch" in j[1])]
        (tmp / f"jobs{ranks}.json").write_text(json.dumps(mine))
        out = tmp / f"out{ranks}.json"
        driver = str(Path(__file__).parent / "test_cluster.py")
        p = _mpirun(ranks, [driver, "--driver", str(tmp / f"jobs{ranks}.json"), str(out)])
        assert p.returncode in (0, 1), p.stderr[-3000:]
        got[ranks] = dict(zip(map(tuple, mine), json.loads(out.read_text()), strict=True))
    return {"jobs": jobs, "got": got, "ref": [_in_process(a) for a in jobs]}


@needs_mpi
@pytest.mark.parametrize("ranks", RANKS)
def test_every_job_matches_one_process_and_ran_natively(runs: dict, ranks: int) -> None:
    for argv, (rc, out) in zip(runs["jobs"], runs["ref"], strict=True):
        got = runs["got"][ranks].get(tuple(argv))
        if got is None:
            continue
        name = " ".join(Path(a).name for a in argv[1:4])
        assert got["rc"] == rc, (name, got["stderr"][-2000:])
        assert "running on the interpreter" not in got["stderr"], name
        if "--json" not in argv:
            assert got["stdout"] == out, name
            continue
        a, b = json.loads(out), json.loads(got["stdout"])
        assert (b["status"], b["fault"]) == (a["status"], a["fault"]), name
        if "--max-steps" not in argv:  # where a step limit stops each rank is not lockstep (docs/cluster.md)
            assert b["outputs"] == a["outputs"], name
        assert b["engine"] == "jit" and b["fallback"] is None, name
        if "--stats" in argv:
            for k in SAME_STATS:
                assert b["stats"][k] == a["stats"][k], (name, k)
            for k in SAME_FLEET:
                assert b["stats"]["fleet"][k] == a["stats"]["fleet"][k], (name, k)
            # the run ended natively (a replay on the interpreter reports no cycles)
            assert b["stats"]["jit"]["cycles"] > 0, name


@needs_mpi
def test_the_jobs_really_fault_deadlock_and_stream(runs: dict) -> None:
    """Guard the comparison: the reference runs do what the job names say."""
    by = {
        Path(j[1]).stem: json.loads(r[1])
        for j, r in zip(runs["jobs"], runs["ref"], strict=True)
        if "--json" in j
    }
    assert by["fault"]["status"] == "fault" and by["fault"]["fault"]["sentron"] == 3
    assert by["barrier_deadlock"]["status"] == "deadlock" and by["barrier_deadlock"]["fault"]["waits"]
    dl = by["deadlock_p2p"]
    assert dl["status"] == "deadlock" and [w["sentron"] for w in dl["fault"]["waits"]] == [0, 1, 2, 3]
    assert by["mismatch"]["status"] != "ok"
    st = {(o["sentron"], o["name"]): o["value"] for o in by["stream"]["outputs"]}
    assert st[3, "r6"] == 7 * sum(range(1, 101)) and st[3, "r7"] == 100
    assert st[0, "r11"] == st[0, "r12"] == 1 + 2 + 3
    assert by["stream"]["stats"]["fleet"]["messages"] == 103
    rows = {o["name"]: o["value"] for o in by["rows"]["outputs"] if o.get("sentron", 0) == 0}
    assert rows["r7"] == sum(range(100, 108))
    assert {o["value"] for o in by["chain"]["outputs"] if o["sentron"] == 1} == {77}
    sf = by["store_fault"]
    assert (
        sf["status"] == "fault" and sf["fault"]["sentron"] == 3 and sf["outputs"][0]["value"][1:3] == [5, 5]
    )


@needs_mpi
def test_an_internal_error_in_the_bridge_stops_every_rank(tmp_path: Path) -> None:
    """A failing rank asks the others to stop and every rank exits with the code itself (no MPI_Abort)."""
    script = tmp_path / "boom.py"
    script.write_text(
        "import sys\n"
        "from vtpu_cli.cluster import ranks\n"
        "step = ranks.RankJit._step\n"
        "def broken(self, sens):\n"
        "    if self.rank == 1:\n"
        "        raise RuntimeError('injected')\n"
        "    return step(self, sens)\n"
        "ranks.RankJit._step = broken\n"
        "from vtpu_cli.cli.main import main\n"
        f"sys.argv = ['vtpu', 'run', {str(FLEET / 'ring_allreduce.vasm')!r}, '-n', '4']\n"
        "main()\n"
    )
    t0 = time.monotonic()
    p = _mpirun(2, [str(script)], timeout=60)
    assert p.returncode == 3 and time.monotonic() - t0 < 30, p.stderr
    assert "vtpu: rank 1: RuntimeError: injected; stopping every rank" in p.stderr
    assert "Abort(" not in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_programs_that_write_memory_say_why_they_use_the_interpreter() -> None:
    from vtpu_cli.asm.loader import load_program
    from vtpu_cli.cluster.ranks import Checkpointing, jit_reason
    from vtpu_cli.engines.base import load_memory
    from vtpu_cli.engines.select import EngineOptions
    from vtpu_cli.machine.memory import Memory

    def reason(path: Path, **kw) -> str | None:
        prog = load_program(path)
        mem = Memory()
        load_memory(prog, mem)
        return jit_reason(prog, mem, EngineOptions(sentrons=4, **kw), Checkpointing())[1]

    assert reason(FLEET / "ring_allreduce.vasm") is None
    assert reason(FLEET / "race_fixed.vasm") is None  # stores into existing scrolls are replicated
    why = reason(FLEET / "matmul_scatter.vasm")
    assert why.startswith("SALLOC, SFREE:") and "memory coherence" in why
    assert reason(FLEET / "ring_allreduce.vasm", max_steps=10) is None  # each rank gets its share


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 3])
def test_generated_fleet_programs_match_one_process(tmp_path: Path, ranks: int) -> None:
    """Differential campaign: random ring/collective programs (``progen.fleet_source``, 2..16 sentrons)
    through the JIT ranks, each compared with the single-process interpreter (one launch for all)."""
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning
    from progen import fleet_source

    jobs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        for k in range(40):
            src, n = fleet_source().example()
            (tmp_path / f"g{k}.vasm").write_text(src)
            jobs.append(["run", str(tmp_path / f"g{k}.vasm"), "-n", str(n), "--json", "--stats"])
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    out = tmp_path / "out.json"
    driver = str(Path(__file__).parent / "test_cluster.py")
    p = _mpirun(ranks, [driver, "--driver", str(tmp_path / "jobs.json"), str(out)], timeout=600)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    for argv, got in zip(jobs, json.loads(out.read_text()), strict=True):
        rc, ref = _in_process(argv)
        name = Path(argv[1]).read_text()
        assert got["rc"] == rc, (name, got["stderr"][-1500:])
        a, b = json.loads(ref), json.loads(got["stdout"])
        assert (b["status"], b["fault"], b["outputs"]) == (a["status"], a["fault"], a["outputs"]), name
        assert b["engine"] == "jit" and b["fallback"] is None, name
        for k in SAME_FLEET:
            assert b["stats"]["fleet"][k] == a["stats"]["fleet"][k], (name, k)


@needs_mpi
def test_ranks_agree_on_the_interpreter_when_one_cannot_prepare_the_jit(tmp_path: Path) -> None:
    """A rank whose JIT preparation fails (a compile that timed out there only, ...) sends every rank to
    the interpreter with the reason, instead of leaving the others waiting."""
    script = tmp_path / "prep.py"
    script.write_text(
        "import sys\n"
        "from vtpu_cli.cluster import ranks\n"
        "orig = ranks.jit_reason\n"
        "def broken(*a, **k):\n"
        "    from mpi4py import MPI\n"
        "    if MPI.COMM_WORLD.Get_rank() == 1:\n"
        "        raise RuntimeError('injected')\n"
        "    return orig(*a, **k)\n"
        "ranks.jit_reason = broken\n"
        "from vtpu_cli.cli.main import main\n"
        f"sys.argv = ['vtpu', 'run', {str(FLEET / 'ring_allreduce.vasm')!r}, '-n', '4', '--json']\n"
        "main()\n"
    )
    p = _mpirun(2, [str(script)], timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["status"] == "ok" and doc["engine"] == "interp"
    assert "could not prepare this program on rank 1 (injected)" in doc["fallback"]
