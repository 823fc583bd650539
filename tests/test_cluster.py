"""`mpiexec -n R vtpu run`: results bit for bit as in one process, faults, deadlocks and dead ranks.

The MPI runs go through one ``mpiexec`` launch per rank count: this file doubles as the driver that
each rank executes (``python tests/test_cluster.py --driver JOBS OUT``), running every job's
``vtpu run`` in turn, so the suite pays the MPI start-up once per rank count, not once per program.
Ranks are oversubscribed on this host (mpich's hydra places them all on localhost).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "programs" / "fleet"


def _mpiexec() -> str | None:
    from vtpu_cli.cluster.latency import find_mpiexec

    return find_mpiexec()


def _mpi_missing() -> str | None:
    if _mpiexec() is None:
        return "mpiexec is not installed (pip install 'vtpu[cluster]')"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'vtpu[cluster]')"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))

COLLECTIVES = """\
; f32 CREDUCE whose sum depends on the combining order (1e8 + 1 rounds back to 1e8), min/max over -0.0
; and 0.0, a subset group, CCAST from root 5, CFENCE, CRECV from any with the sender's id.
.coord V = 1.1.1/1.1.1/1.1.1
.data V f32[8] 100000000.0, 1.0, -100000000.0, 1.0, 3.0, -0.0, 0.0, 0.25
.group low = 0, 1, 2
.output r5.f32, r6.f32, r7.f32, v3.f32, v4.f32, r10.f32, r11, r12
    DMOV r1, sid                 | SCOORD p0, V
    DMUL r2, r1, 4               |                          | CFENCE
                                 | SGATHER.f32 r3, [p0 + r2]
                                 |                          | CREDUCE.add.f32 r5, r3, all
                                 |                          | CREDUCE.min.f32 r6, r3, all
                                 |                          | CREDUCE.max.f32 r7, r3, all
    DBCAST.f32 v1, r3
                                 |                          | CREDUCE.add.f32 v3, v1, all
                                 |                          | CCAST.f32 v4, v1, 5, all
    DCMP.lt r9, r1, 3
    DBRF skip
                                 |                          | CREDUCE.add.f32 r10, r3, low
skip:
    DMOV r11, 0
    DMOV r12, 0
    DCMP.eq r9, r1, 0
    DBRT collect
                                 |                          | CPACK.i64 m0, r1
                                 |                          | CSEND m0, 0
    DHALT
collect:
    DMOV r4, scount
    DSUB r4, r4, 1
again:
                                 |                          | CRECV m1, -1, r13
                                 |                          | CUNPACK.i64 r14, m1
    DADD r11, r11, r14
    DADD r12, r12, r13
    DLOOP r4, again
"""

FAULT = """\
; sentron 3 loads past the end of a scroll while the others wait in a barrier
.coord S = 1.1.1/1.1.1/1.1.1
.zero S i64 1
.output r4
    DMOV r1, sid                 | SCOORD p0, S
    DCMP.eq r9, r1, 3
    DBRF wait
    DMOV r2, 64
                                 | SGATHER.i64 r4, [p0 + r2]
wait:
                                 |                          | CBAR all
"""

REMOTE = """\
; sentron 3 allocates a scroll at sentron 0's home coordinate (homed on sentron 0's rank) and stores into
; it; after a barrier sentron 0 reads it and frees it; sentron 2 then loads from the freed scroll.
.coord H0 = 1.1.1/1.1.1/1.1.1
.coord W = 1.1.2/1.1.1/1.1.7
.data W i64[4] 10, 20, 30, 40
.output r5, r6
    DMOV r1, sid                 | SCOORD p0, H0
    DMOV r3, 64                  | SCOORD p1, W
    DMOV r4, 8
    DMUL r4, r4, r1
                                 | SGATHER.i64 r6, [p1 + r4]
    DCMP.eq r9, r1, 3
    DBRF wait
    DMOV r2, 7
                                 | SALLOC p0, r3
                                 | SSCATTR.i64 [p0 + 8], r2
wait:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF later
                                 | SGATHER.i64 r5, [p0 + 8]
                                 | SSCATTR.i64 [p1], r5
                                 | SFREE p0
later:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 2
    DBRF end
                                 | SGATHER.i64 r7, [p1]
                                 | SGATHER.i64 r6, [p0]
end:
"""

CAPACITY = """\
; queue capacity across ranks: sentron 0 sends 20 messages to sentron 3 and then waits at a barrier that
; sentron 3 reaches before receiving: the 17th CSEND finds the queue full and the fleet deadlocks.
; With LIMIT=16 everything fits and the run completes.
.const LIMIT = 20
.output r6
    DMOV r1, sid
    DMOV r6, 0
    DCMP.eq r9, r1, 0
    DBRF other
    DMOV r2, LIMIT
send:
                                 |                          | CPACK.i64 m0, r2
                                 |                          | CSEND m0, 3
    DLOOP r2, send
other:
                                 |                          | CBAR all
    DCMP.eq r9, r1, 3
    DBRF end
    DMOV r2, LIMIT
take:
                                 |                          | CRECV m1, 0
                                 |                          | CUNPACK.i64 r7, m1
    DADD r6, r6, r7
    DLOOP r2, take
end:
"""

HANDOFF = """\
; sentron 0 stores twice into a scroll homed with sentron 3, then messages sentron 2, which loads it:
; the store must be home before the message can be received.
.coord Y = 1.1.1/1.1.1/1.1.4
.zero Y i64 2
.output r5
    DMOV r1, sid                 | SCOORD p0, Y
    DMOV r5, 0
    DCMP.eq r9, r1, 0
    DBRF recv
    DMOV r2, 41
                                 | SSCATTR.i64 [p0 + 8], r2
    DADD r2, r2, 1
                                 | SSCATTR.i64 [p0 + 8], r2
                                 |                          | CPACK.i64 m0, r2
                                 |                          | CSEND m0, 2
    DHALT
recv:
    DCMP.eq r9, r1, 2
    DBRF end
                                 |                          | CRECV m1, 0
                                 | SGATHER.i64 r5, [p0 + 8]
end:
"""

SPIN = """\
; runs until it is killed
top:
    DJMP top
"""

ITER = """\
; 10 iterations: fold my id into r6, pass it right around the ring, accumulate what comes from the left,
; barrier; sentron 0 stores the running total into a scroll between two barriers.
.coord ACC = 1.1.1/1.1.1/1.1.1
.zero ACC i64 1
.output r6, r7, ACC
    DMOV r1, sid                 | SCOORD p0, ACC
    DMOV r4, scount
    DADD r2, r1, 1
    DCMP.eq r9, r2, r4
    DBRF ok
    DMOV r2, 0
ok:
    DADD r3, r1, r4
    DSUB r3, r3, 1
    DCMP.ge r9, r3, r4
    DBRF ok2
    DSUB r3, r3, r4
ok2:
    DMOV r5, 10
    DMOV r6, 0
    DMOV r7, 0
iter:
    DADD r6, r6, r1
    DMUL r6, r6, 3
                                 |                          | CPACK.i64 m0, r6
                                 |                          | CSEND m0, r2
                                 |                          | CRECV m1, r3
                                 |                          | CUNPACK.i64 r8, m1
    DADD r7, r7, r8
                                 |                          | CBAR all
    DCMP.eq r9, r1, 0
    DBRF skip
                                 | SSCATTR.i64 [p0], r7
skip:
                                 |                          | CBAR all
    DLOOP r5, iter
"""

# the C-pipe and memory counters a distributed run must reproduce exactly
SAME_STATS = ("siws", "ops", "ops_by_pipe")
SAME_FLEET = ("messages", "bytes", "routed", "hops", "barriers", "collectives")


def _jobs(tmp: Path) -> list[list[str]]:
    (tmp / "collectives.vasm").write_text(COLLECTIVES)
    (tmp / "fault.vasm").write_text(FAULT)
    (tmp / "remote.vasm").write_text(REMOTE)
    (tmp / "capacity.vasm").write_text(CAPACITY)
    (tmp / "handoff.vasm").write_text(HANDOFF)
    (tmp / "capacity16.vasm").write_text(CAPACITY.replace("LIMIT = 20", "LIMIT = 16"))
    f = str(FLEET)
    return [
        ["run", f"{f}/ring_allreduce.vasm", "-n", "4", "--json", "--stats"],
        ["run", f"{f}/ring_allreduce.vasm", "-n", "5", "--json", "--stats"],
        ["run", f"{f}/pipeline.vasm", "-n", "2", "--json", "--stats"],
        ["run", f"{f}/tree_broadcast.vasm", "-n", "8", "--json", "--stats"],
        [
            "run",
            f"{f}/matmul_scatter.vasm",
            "-n",
            "16",
            "--json",
            "--stats",
            "--out",
            str(tmp / "C.safetensors"),
        ],
        ["run", f"{f}/route.vasm", "-n", "8", "--topology", "torus:2x4", "--json", "--stats"],
        ["run", f"{f}/barrier_deadlock.vasm", "-n", "4", "--json"],
        ["run", f"{f}/race_fixed.vasm", "-n", "2", "--json"],
        ["run", str(tmp / "collectives.vasm"), "-n", "8", "--json", "--stats"],
        ["run", str(tmp / "fault.vasm"), "-n", "4", "--json"],
        ["run", str(tmp / "remote.vasm"), "-n", "4", "--json", "--stats"],
        ["run", str(tmp / "capacity.vasm"), "-n", "4", "--json"],
        ["run", str(tmp / "handoff.vasm"), "-n", "4", "--json"],
        ["run", str(tmp / "capacity16.vasm"), "-n", "4", "--json", "--stats"],
        ["run", f"{f}/matmul_scatter.vasm", "-n", "16"],  # the text report
        ["run", f"{f}/ring_allreduce.vasm", "-n", "4", "--max-steps", "40", "--json"],
    ] + [  # single-sentron examples, SPMD over 3 sentrons: uneven blocks, and a rank without sentrons at 4
        ["run", str(ROOT / "programs" / p), "-n", "3", "--json", "--stats"]
        for p in (
            "dot.vasm",
            "loop_mix.vasm",
            "ternary_dot.vasm",
            "memory/random_access.vasm",
            "memory/row_walk.vasm",
        )
    ]


def _in_process(argv: list[str]) -> tuple[int, str]:
    from vtpu_cli.cli.main import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = cli(argv + ["--engine", "interp"])
    return rc, out.getvalue()


def driver(jobs_path: str, out_path: str) -> None:
    """Each rank runs every job; rank 0 records exit codes and stdout."""
    from mpi4py import MPI

    from vtpu_cli.cli.main import cli

    rank = MPI.COMM_WORLD.Get_rank()
    results = []
    for argv in json.loads(Path(jobs_path).read_text()):
        sys.argv = ["vtpu", *argv]
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli(argv)
        except SystemExit as e:
            rc = e.code
        results.append({"argv": argv, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
    if rank == 0:
        Path(out_path).write_text(json.dumps(results))


def _mpirun(ranks: int, args: list[str], timeout: float = 120, env: dict | None = None, **kw):
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, *args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        **kw,
    )


def _vtpu(*args: str) -> list[str]:
    return ["-m", "vtpu_cli.cli.main", *args]


# --------------------------------------------------------------------------- placement (no MPI needed)
@given(st.integers(1, 300), st.integers(1, 40))
def test_block_distribution_partitions_the_sentrons(n: int, ranks: int) -> None:
    from vtpu_cli.fleet.mpi import block_range, rank_table

    blocks = [block_range(r, n, ranks) for r in range(ranks)]
    assert [i for b in blocks for i in b] == list(range(n))  # contiguous, in rank order, each once
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    table = rank_table(n, ranks)
    assert all(table[i] == r for r, b in enumerate(blocks) for i in b)


@given(st.integers(1, 200), st.integers(0, 10**6))
def test_home_rank_rule(n: int, sid: int) -> None:
    from vtpu_cli.cluster.router import home_sentron
    from vtpu_cli.core import coords

    assert home_sentron(coords.home_packed(sid), n) == sid % n  # a sentron's home coordinate is homed with it
    assert home_sentron(coords.parse_packed("1.1.1/1.1.1/1.1.1"), n) == 0
    assert home_sentron(coords.parse_packed("1.1.1/1.1.1/1.2.1"), n) == 999 % n


def test_documented_example_placement() -> None:
    from vtpu_cli.fleet.mpi import block_range

    assert [list(block_range(r, 10, 4)) for r in range(4)] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]


def test_sentrons_default_to_the_rank_count(monkeypatch) -> None:
    from vtpu_cli.cluster import ranks

    monkeypatch.setenv("PMI_SIZE", "4")
    assert ranks.under_mpi()
    assert ranks.sentrons(1, ["run", "p.siw"]) == 4
    assert ranks.sentrons(1, ["run", "p.siw", "-n", "1"]) == 1
    assert ranks.sentrons(16, ["run", "p.siw", "--sentrons=16"]) == 16
    assert ranks.sentrons(2, ["run", "-n2", "p.siw"]) == 2
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not ranks.under_mpi()


def test_missing_mpi4py_is_exit_3_with_the_extra_named(tmp_path: Path) -> None:
    """Under an mpiexec environment without mpi4py: a clear error, never a traceback."""
    fake = tmp_path / "fake"
    (fake / "mpi4py").mkdir(parents=True)
    (fake / "mpi4py" / "__init__.py").write_text("raise ImportError('mpi4py is not here')\n")
    env = {**os.environ, "PMI_SIZE": "2", "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"}
    p = subprocess.run(
        [sys.executable, *_vtpu("run", str(FLEET / "ring_allreduce.vasm"))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 3, p.stderr
    assert "vtpu[cluster]" in p.stderr and "Traceback" not in p.stderr


# --------------------------------------------------------------------------- bit-exact runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    if _mpi_missing():
        pytest.skip(_mpi_missing())
    tmp = tmp_path_factory.mktemp("cluster")
    jobs = _jobs(tmp)
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    got = {}
    for ranks, mode in CONFIGS:
        out = tmp / f"out{ranks}{mode}.json"
        p = _mpirun(
            ranks,
            [__file__, "--driver", str(tmp / "jobs.json"), str(out)],
            timeout=180,
            env={"VTPU_CLUSTER_MEMORY": mode},
        )
        assert p.returncode in (0, 1), p.stderr[-3000:]
        got[ranks, mode] = json.loads(out.read_text())
        if (tmp / "C.safetensors").exists():
            (tmp / "C.safetensors").rename(tmp / f"C{ranks}{mode}.safetensors")
    ref = []
    for argv in jobs:
        ref.append(_in_process(argv))
    return {"jobs": jobs, "got": got, "ref": ref, "tmp": tmp}


MODES = ("homed", "replicated")
CONFIGS = [(2, "homed"), (4, "homed"), (4, "replicated")]  # (ranks, memory mode): one mpiexec launch each


@needs_mpi
@pytest.mark.parametrize(("ranks", "mode"), CONFIGS)
def test_outputs_status_and_faults_match_one_process(runs: dict, ranks: int, mode: str) -> None:
    for argv, (rc, out), got in zip(runs["jobs"], runs["ref"], runs["got"][ranks, mode], strict=True):
        name = " ".join(Path(a).name for a in argv[1:])
        assert got["rc"] == rc, (name, got["stderr"])
        if "--json" not in argv:
            assert got["stdout"] == out, name  # the text report, byte for byte
            continue
        a, b = json.loads(out), json.loads(got["stdout"])
        assert (b["status"], b["fault"]) == (a["status"], a["fault"]), name
        if "--max-steps" not in argv:  # where a step limit stops each rank is not lockstep (docs/cluster.md)
            assert b["outputs"] == a["outputs"], name
        if "--stats" in argv and a["status"] == "ok":  # a fault stops the other ranks wherever they are
            for k in SAME_STATS:
                assert b["stats"][k] == a["stats"][k], (name, k)
            for k in SAME_FLEET:
                assert b["stats"]["fleet"][k] == a["stats"]["fleet"][k], (name, k)
        if _jit_expected(argv):  # no memory writes, no step limit: every rank's sentrons ran natively
            assert b["engine"] == "jit" and b["fallback"] is None, name
        else:
            assert b["engine"] == "interp" and f"{ranks} ranks" in b["fallback"], name


def _jit_expected(argv: list[str]) -> bool:
    """Whether a job runs on the JIT under mpiexec (docs/cluster.md, "Engines")."""
    from vtpu_cli.cluster.ranks import MEMORY_WRITES

    text = Path(argv[1]).read_text()
    return not any(op in text for op in MEMORY_WRITES)


@needs_mpi
def test_what_the_jobs_cover(runs: dict) -> None:
    """Guard the comparison above: the jobs really fault, deadlock (with the wait graph) and compute."""
    by = {
        " ".join(Path(a).name for a in j[1:3]): json.loads(r[1])
        for j, r in zip(runs["jobs"], runs["ref"], strict=True)
        if "--json" in j
    }
    assert by["fault.vasm -n"]["fault"]["sentron"] == 3
    assert "out-of-bounds" in by["fault.vasm -n"]["fault"]["message"]
    dl = by["barrier_deadlock.vasm -n"]
    assert dl["status"] == "deadlock" and "waits in CRECV from any" in dl["fault"]["message"]
    assert [w["sentron"] for w in dl["fault"]["waits"]] == [0, 1, 2, 3]
    col = {o["name"]: o["value"] for o in by["collectives.vasm -n"]["outputs"] if o["sentron"] == 0}
    assert col["r5"] == 4.25  # (((1e8 + 1) - 1e8) + 1 + 3 ...: 4.25 in id order, 5.25 if the 1e8s met first
    assert col["r6"] == -100000000.0 and col["r7"] == 100000000.0
    assert col["r11"] == col["r12"] == sum(range(1, 8))
    hand = {o["sentron"]: o["value"] for o in by["handoff.vasm -n"]["outputs"]}
    assert hand[2] == 42
    cap = by["capacity.vasm -n"]
    assert cap["status"] == "deadlock" and "CSEND to 3 (queue full)" in cap["fault"]["message"]
    assert by["capacity16.vasm -n"]["status"] == "ok"
    rem = by["remote.vasm -n"]
    assert rem["status"] == "fault" and rem["fault"]["sentron"] == 2
    assert rem["fault"]["message"].startswith("no scroll at 1.1.1/1.1.1/1.1.1")
    r5 = {o["sentron"]: o["value"] for o in rem["outputs"] if o["name"] == "r5"}
    assert r5[0] == 7


@needs_mpi
def test_out_file_is_identical(runs: dict, tmp_path: Path) -> None:
    from vtpu_cli.cli.main import cli

    ref = tmp_path / "C.safetensors"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli(["run", str(FLEET / "matmul_scatter.vasm"), "-n", "16", "--out", str(ref)]) == 0
    for ranks, mode in CONFIGS:
        assert (runs["tmp"] / f"C{ranks}{mode}.safetensors").read_bytes() == ref.read_bytes()


# --------------------------------------------------------------------------- checkpoint/restart
def _cli_json(argv: list[str], env: dict[str, str], monkeypatch) -> tuple[int, dict | None, str]:
    from vtpu_cli.cli.main import cli

    for k in ("VTPU_CHECKPOINT", "VTPU_CHECKPOINT_EVERY", "VTPU_RESUME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli(argv)
    text = out.getvalue()
    return rc, (json.loads(text) if text.startswith("{") else None), err.getvalue()


@pytest.fixture
def iter_prog(tmp_path: Path) -> Path:
    p = tmp_path / "iter.vasm"
    p.write_text(ITER)
    return p


def test_checkpoint_and_resume_in_one_process(iter_prog: Path, tmp_path: Path, monkeypatch) -> None:
    run = ["run", str(iter_prog), "-n", "4", "--json", "--stats"]
    rc, ref, _ = _cli_json(run + ["--engine", "interp"], {}, monkeypatch)
    assert rc == 0 and ref["status"] == "ok"
    ck = tmp_path / "ck"
    # a run cut short after its second checkpoint (barriers 4 and 8 of 20) ...
    rc, cut, err = _cli_json(
        run + ["--max-steps", "250"], {"VTPU_CHECKPOINT": str(ck), "VTPU_CHECKPOINT_EVERY": "4"}, monkeypatch
    )
    assert rc == 1 and cut["status"] == "step-limit"
    assert "checkpoint after barrier 8" in err and (ck / "checkpoint.npz").exists()
    # ... continues from barrier 8 to the same end, counters included
    rc, res, _ = _cli_json(run, {"VTPU_RESUME": str(ck)}, monkeypatch)
    assert rc == 0 and res["outputs"] == ref["outputs"]
    for k in ("siws", "ops"):
        assert res["stats"][k] == ref["stats"][k]
    for k in SAME_FLEET:
        assert res["stats"]["fleet"][k] == ref["stats"]["fleet"][k], k
    # an uninterrupted run with checkpoints on gives the same outputs too
    rc, whole, err = _cli_json(run, {"VTPU_CHECKPOINT": str(tmp_path / "ck2")}, monkeypatch)
    assert rc == 0 and whole["outputs"] == ref["outputs"] and err.count("checkpoint after barrier") == 20


def test_resume_refuses_what_it_cannot_continue(iter_prog: Path, tmp_path: Path, monkeypatch) -> None:
    ck = tmp_path / "ck"
    run = ["run", str(iter_prog), "-n", "4", "--json"]
    assert _cli_json(run, {"VTPU_CHECKPOINT": str(ck), "VTPU_CHECKPOINT_EVERY": "7"}, monkeypatch)[0] == 0
    rc, _, err = _cli_json(["run", str(iter_prog), "-n", "2"], {"VTPU_RESUME": str(ck)}, monkeypatch)
    assert rc == 2 and "4 sentrons" in err
    other = tmp_path / "other.vasm"
    other.write_text(ITER.replace("DMOV r5, 10", "DMOV r5, 11"))
    rc, _, err = _cli_json(["run", str(other), "-n", "4"], {"VTPU_RESUME": str(ck)}, monkeypatch)
    assert rc == 2 and "another program" in err
    text = run[:-1]  # errors in the text form, on stderr
    rc, _, err = _cli_json(text, {"VTPU_RESUME": str(tmp_path / "none")}, monkeypatch)
    assert rc == 2 and "no checkpoint" in err
    (ck / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    rc, _, err = _cli_json(text, {"VTPU_RESUME": str(ck)}, monkeypatch)
    assert rc == 2 and "corrupt checkpoint" in err and "Traceback" not in err
    rc, _, err = _cli_json(text, {"VTPU_CHECKPOINT": str(ck), "VTPU_CHECKPOINT_EVERY": "0"}, monkeypatch)
    assert rc == 2 and "at least 1" in err


@needs_mpi
def test_checkpoint_on_2_ranks_resumes_on_4_ranks_and_in_one_process(
    iter_prog: Path, tmp_path: Path, monkeypatch
) -> None:
    rc, ref, _ = _cli_json(
        ["run", str(iter_prog), "-n", "4", "--json", "--engine", "interp"], {}, monkeypatch
    )
    ck = tmp_path / "ck"
    p = _mpirun(
        2,
        _vtpu("run", str(iter_prog), "-n", "4", "--json", "--max-steps", "250"),
        env={"VTPU_CHECKPOINT": str(ck), "VTPU_CHECKPOINT_EVERY": "4"},
    )
    assert p.returncode == 1 and json.loads(p.stdout)["status"] == "step-limit", p.stderr
    assert "checkpoint after barrier" in p.stderr
    p = _mpirun(4, _vtpu("run", str(iter_prog), "-n", "4", "--json"), env={"VTPU_RESUME": str(ck)})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["outputs"] == ref["outputs"]
    rc, res, _ = _cli_json(
        ["run", str(iter_prog), "-n", "4", "--json"], {"VTPU_RESUME": str(ck)}, monkeypatch
    )
    assert rc == 0 and res["outputs"] == ref["outputs"]


# --------------------------------------------------------------------------- the launcher itself
@needs_mpi
def test_mpiexec_vtpu_run_prints_once_with_sentrons_defaulting_to_ranks() -> None:
    p = _mpirun(2, _vtpu("run", str(FLEET / "ring_allreduce.vasm")), timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "sentron 0: v1.i32 = [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48]",
        "sentron 1: v1.i32 = [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48]",
        "sentron 0: r8.i64 = 1",
        "sentron 1: r8.i64 = 1",
    ]
    assert "running on the interpreter" not in p.stderr  # every rank's sentrons ran on the JIT


@needs_mpi
def test_thread_multiple_missing_is_exit_3() -> None:
    p = _mpirun(
        2,
        _vtpu("run", str(FLEET / "ring_allreduce.vasm")),
        timeout=60,
        env={"MPI4PY_RC_THREAD_LEVEL": "serialized"},
    )
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "MPI_THREAD_MULTIPLE" in p.stderr and "Traceback" not in p.stderr


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _wait_until_running(pid: int, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Until the rank has initialised MPI and installed its handler for ``sig`` (read from /proc, not
    guessed with a delay: a slow start on a loaded machine must not kill the rank before it listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"libmpi" in Path(f"/proc/{pid}/maps").read_bytes() and _catches(pid, signal.SIGTERM):
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError(f"rank pid {pid} never initialised MPI and its signal handlers")


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the ranks")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_dead_rank_stops_the_run_within_seconds(tmp_path: Path, sig: int) -> None:
    prog = tmp_path / "spin.vasm"
    prog.write_text(SPIN)
    tag = str(time.time_ns())
    env = {**os.environ, "VTPU_TEST_RUN": tag}
    cmd = [_mpiexec(), "-n", "2", sys.executable, *_vtpu("run", str(prog), "-n", "4")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        pids = _rank_pids(tag, 2)
        _wait_until_running(pids[1])
        os.kill(pids[1], sig)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0
    assert took < 15
    said = out + err  # hydra reports a killed process on stdout
    if sig == signal.SIGTERM:
        assert f"vtpu: rank 1 (pid {pids[1]}" in said, said
    else:
        assert f"PID {pids[1]} " in said and "signal 9" in said, said  # hydra names the killed process


def _rank_pids(tag: str, want: int, timeout: float = 30) -> dict[int, int]:
    """Rank -> pid of the processes of the launch tagged ``tag`` (their environment names both)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                env = (d / "environ").read_bytes().split(b"\0")
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"vtpu_cli.cli.main" not in cmd:
                continue
            vals = dict(e.split(b"=", 1) for e in env if b"=" in e)
            if vals.get(b"VTPU_TEST_RUN") == tag.encode() and b"PMI_RANK" in vals:
                found[int(vals[b"PMI_RANK"])] = int(d.name)
        if len(found) == want:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the {want} ranks of launch {tag} were not found")


@needs_mpi
@pytest.mark.parametrize("bad", [1, 0])
def test_an_internal_error_on_one_rank_stops_every_rank(tmp_path: Path, bad: int) -> None:
    """Every rank exits with the code by itself (no MPI_Abort, whose killed ranks make the launcher
    report a signal instead of the code)."""
    script = tmp_path / "boom.py"
    script.write_text(
        "import sys\n"
        "from vtpu_cli.cluster import ranks\n"
        "loop = ranks.RankInterpreter._loop\n"
        "def broken(self):\n"
        f"    if self.rank == {bad}:\n"
        "        raise RuntimeError('injected')\n"
        "    return loop(self)\n"
        "ranks.RankInterpreter._loop = broken\n"
        "from vtpu_cli.cli.main import main\n"
        f"sys.argv = ['vtpu', 'run', {str(FLEET / 'ring_allreduce.vasm')!r}, '-n', '4', '--engine', 'interp']\n"
        "main()\n"
    )
    t0 = time.monotonic()
    p = _mpirun(2, [str(script)], timeout=60)
    assert p.returncode == 3 and time.monotonic() - t0 < 30, p.stderr
    assert f"vtpu: rank {bad}: RuntimeError: injected; stopping every rank" in p.stderr
    assert "Abort(" not in p.stderr and "Traceback" not in p.stderr, p.stderr


@needs_mpi
def test_library_runs_return_on_every_rank(tmp_path: Path) -> None:
    """A caller that runs several programs in a row (a decode loop) keeps every rank alive."""
    script = tmp_path / "loop.py"
    script.write_text(
        "from vtpu_cli.asm.loader import load_program\n"
        "from vtpu_cli.cluster.ranks import open_engine\n"
        "from vtpu_cli.engines.base import load_memory\n"
        "from vtpu_cli.engines.select import EngineOptions\n"
        "from vtpu_cli.fleet.topology import parse_topology\n"
        "from vtpu_cli.machine.memory import Memory\n"
        "from pathlib import Path\n"
        f"prog = load_program(Path({str(FLEET / 'ring_allreduce.vasm')!r}))\n"
        "for step in range(3):\n"
        "    mem = Memory()\n"
        "    load_memory(prog, mem)\n"
        "    o = EngineOptions(engine='interp', sentrons=4, topology=parse_topology('ring', 4))\n"
        "    res = open_engine(prog, mem, o, exit_workers=False).run()\n"
        "    mine = [s.R[8] for s in res.sentrons if s.halted]\n"
        "    import sys\n"
        "    sys.stdout.write(f'{step} {res.status} {mine}\\n')  # one write: ranks share the pipe\n"
        "    sys.stdout.flush()\n"
    )
    p = _mpirun(2, [str(script)], timeout=60)
    assert p.returncode == 0, p.stderr
    lines = sorted(p.stdout.splitlines())
    # rank 0 sees all four sentrons halted with r8 = 1; rank 1 sees its own two
    assert lines == sorted([f"{i} ok [1, 1, 1, 1]" for i in range(3)] + [f"{i} ok [1, 1]" for i in range(3)])


@needs_mpi
def test_measure_latency_reports_both_sides() -> None:
    from vtpu_cli.cluster.latency import measure_latency

    r = measure_latency(samples=200, warmup=20)
    for side in ("cross_rank", "in_process"):
        assert r[side]["samples"] == 200
        assert 0 < r[side]["median_us"] <= r[side]["p99_us"]
    assert r["ratio"] == pytest.approx(r["cross_rank"]["median_us"] / r["in_process"]["median_us"])
    # the whole program across JIT ranks: every pong delivered natively on rank 0 is a sample
    prog = r["program"]["cross_rank"]
    assert prog["native_path"] and prog["samples"] == 5 * (1100 - 1)
    assert 0 < prog["median_us"] <= prog["p99_us"]
    # the marginal time is a difference of two medians of whole runs (1,000 round trips apart, ~0.2 ms in
    # process): on a loaded host the runs' noise can exceed it, so only its presence is checked here;
    # the per-message samples above are the measurement
    assert math.isfinite(prog["marginal_us"]) and math.isfinite(r["program"]["in_process"]["marginal_us"])


def test_mpi_capability_is_none_without_mpiexec(monkeypatch) -> None:
    from vtpu_cli.cluster import latency

    monkeypatch.setattr(latency, "find_mpiexec", lambda: None)
    assert latency.mpi_capability(samples=10) is None


@needs_mpi
def test_measure_scaling_checks_results_across_rank_counts() -> None:
    from vtpu_cli.cluster.scaling import measure_scaling

    r = measure_scaling(FLEET / "ring_allreduce.vasm", sentrons=4, ranks=(1, 2), repeats=1)
    one, two = r["ranks"][1], r["ranks"][2]
    assert one["status"] == two["status"] == "ok" and two["same_result"]
    assert one["ops"] == two["ops"] > 0
    assert one["remote_messages"] == 0 and two["remote_messages"] > 0  # the ring crosses the rank boundary
    assert 0.0 <= two["overhead"] <= 1.0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--driver":
    driver(sys.argv[2], sys.argv[3])


def test_checkpoint_flags_match_the_environment_settings(
    iter_prog: Path, tmp_path: Path, monkeypatch
) -> None:
    run = ["run", str(iter_prog), "-n", "4", "--json"]
    rc, ref, _ = _cli_json(run + ["--engine", "interp"], {}, monkeypatch)
    ck = tmp_path / "ck"
    rc, cut, err = _cli_json(
        run + ["--max-steps", "250", "--checkpoint", str(ck), "--checkpoint-every", "4"], {}, monkeypatch
    )
    assert rc == 1 and "checkpoint after barrier 8" in err and (ck / "checkpoint.npz").exists()
    rc, res, _ = _cli_json(run + ["--resume", str(ck)], {}, monkeypatch)
    assert rc == 0 and res["outputs"] == ref["outputs"]


def test_a_measurement_launch_that_hangs_is_tried_once_more(monkeypatch) -> None:
    """``launch_with_result``: a launch past its time limit is run again once (an mpiexec launch hung
    once on a loaded host); a second timeout is raised to the caller."""
    import subprocess

    from vtpu_cli.cluster import env as cenv

    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if len(calls) == 1:
            raise subprocess.TimeoutExpired(cmd, kw["timeout"])
        return subprocess.CompletedProcess(cmd, 0, stdout='x\n{"ok": 1}\n', stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    p, result = cenv.launch_with_result(["mpiexec"], {}, 5.0)
    assert len(calls) == 2 and p.returncode == 0 and result == '{"ok": 1}'

    def hang(cmd, **kw):
        calls.append(cmd)
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(subprocess, "run", hang)
    calls.clear()
    with pytest.raises(subprocess.TimeoutExpired):
        cenv.launch_with_result(["mpiexec"], {}, 5.0)
    assert len(calls) == 2
