"""Phext memory: scroll lifetime faults, every S-pipe op, the PPT, tiers, and tensor files in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import PROGRAMS, interruptible
from hypothesis import given, settings
from hypothesis import strategies as st
from test_errors import vtpu

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.core import coords
from vtpu_cli.engines.interp.interpreter import Interpreter
from vtpu_cli.machine.memory import MemFault, Memory, ppt_set
from vtpu_cli.machine.tensorfile import read_safetensors, write_safetensors

C1 = "1.1.1/1.1.1/1.1.1"
C2 = "1.1.1/1.1.1/1.1.2"


def test_salloc_sfree_lifecycle_faults(run_src):
    ok = run_src(f"""
    SCOORD p0, {C1}
    SALLOC p0, 128, 64
    DMOV r1, 7
    SSCATTR.i64 [p0 + 120], r1
    SGATHER.i64 r2, [p0 + 120]
    SFREE p0
.output r2""")
    assert ok.status == "ok" and ok.sentrons[0].R[2] == 7 and not ok.memory.table
    double = run_src(f"    SCOORD p0, {C1}\n    SALLOC p0, 8\n    SALLOC p0, 8")
    assert double.status == "fault" and "already allocated" in double.fault.message
    free2 = run_src(f"    SCOORD p0, {C1}\n    SALLOC p0, 8\n    SFREE p0\n    SFREE p0")
    assert "not allocated" in free2.fault.message and free2.fault.siw == 3
    use = run_src(f"    SCOORD p0, {C1}\n    SALLOC p0, 8\n    SFREE p0\n    SGATHER.i8 r1, [p0]")
    assert use.status == "fault" and f"no scroll at {C1}" in use.fault.message


def test_bounds_fault_message_names_everything(run_src):
    res = run_src(f".zero {C1} i8 10\n    SCOORD p0, {C1}\n    DMOV r1, 3 | SGATHER.i64 r2, [p0 + 3]")
    f = res.fault
    assert (f.sentron, f.siw, f.pipe, f.op) == (0, 1, "S", "SGATHER.i64")
    assert f.message == f"out-of-bounds load of 8 byte(s) at {C1} + 3; scroll size 10"


def test_strided_indexed_and_partial_accesses(run_src):
    data = ", ".join(str(i) for i in range(64))
    res = run_src(f"""
.data {C1} i32[64] {data}
.data {C2} i32[16] 15, 0, 3, 3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 63
    SCOORD p0, {C1}
    SCOORD p1, {C2}
    SGATHER.i32 v0, [p0 + 8 : 12]
    SGATHER.i32 v1, [p1]
    SGATHER.i32 v2, [p0 + v1]
    SGATHER.i32 v3, [p0 + 4], 8
    SSCATTR.i32 [p0 + v1], v0
""")
    s = res.sentrons[0]
    assert list(s.view("i32")[0]) == [2 + 3 * i for i in range(16)]
    assert list(s.view("i32")[2][:4]) == [15, 0, 3, 3]
    assert list(s.view("i32")[3][:3]) == [1, 2, 0]  # 8 bytes loaded, the rest zeroed
    scroll = np.frombuffer(res.memory.table[coords.parse_packed(C1)].buf, np.int32)
    assert scroll[3] == s.view("i32")[0][3]  # lanes 2 and 3 both target element 3: the highest lane wins
    assert scroll[63] == s.view("i32")[0][15]


def test_indexed_gather_out_of_bounds_names_the_lane(run_src):
    res = run_src(
        f".zero {C1} i32 16\n.data {C2} i32[16] 0,1,2,3,4,5,6,7,8,9,10,11,12,13,16,0\n"
        f"    SCOORD p0, {C1}\n    SCOORD p1, {C2}\n    SGATHER.i32 v1, [p1]\n    SGATHER.i32 v2, [p0 + v1]"
    )
    assert "lane 14" in res.fault.message and "+ 64" in res.fault.message


def test_sindex_modes_and_spart(run_src):
    res = run_src("""
    SCOORD p0, 1.1.1/1.1.1/1.1.998
    SINDEX.carry p1, p0, 8, 3
    SINDEX.wrap p2, p0, 8, 3
    SINDEX.set p3, p0, 4, 42
    SPART r1, p1, 7
    SPART r2, p2, 8
    SPART r3, p3, 4
    SINDEX p4, p0, 8, 2
""")
    assert res.status == "fault" and "999" in res.fault.message and res.fault.op == "SINDEX.add"
    s = res.sentrons[0]
    assert coords.format_packed(s.P[1]) == "1.1.1/1.1.1/1.2.2"
    assert coords.format_packed(s.P[2]) == "1.1.1/1.1.1/1.1.2"
    assert (s.R[1], s.R[2], s.R[3]) == (2, 2, 42)


def test_sdedup_unique_inverse_count():
    ids = [7, 3, 7, 9, 3, 3, 1, 7, 9, 9, 2, 2, 7, 1, 0, 5]
    from test_semantics import run_vec

    s = run_vec({0: np.array(ids, np.int32)}, "    SDEDUP v1, v2, r1, v0")
    u, inv, n = list(s.view("i32")[1]), list(s.view("i32")[2]), s.R[1]
    assert u[:n] == [7, 3, 9, 1, 2, 0, 5] and n == 7 and u[n:] == [0] * (16 - n)
    assert [u[i] for i in inv] == ids


def test_ppt_set_associative_lru_counters():
    mem = Memory(sets=1, ways=2)
    cs = [coords.pack(coords.Coord((1,) * 8 + (k,))) for k in (1, 2, 3)]
    for c in cs:
        mem.add(c, np.zeros(4, np.uint8))
    seq = [0, 1, 0, 2, 1, 0]  # LRU with 2 ways: miss, miss, hit, miss(evicts 1), miss(evicts 0), miss
    for i in seq:
        mem.translate(cs[i])
    assert (mem.stats.hits, mem.stats.misses) == (1, 5)
    with pytest.raises(MemFault):
        mem.translate(coords.pack(coords.Coord((2,) * 9)))


def test_ppt_sets_spread_coordinate_neighbours():
    base = coords.parse_packed("1.1.1/1.1.1/1.1.1")
    sets = {ppt_set(coords.advance_packed(base, 8, k), 64) for k in range(64)}
    assert len(sets) > 40


def test_z_order_placement_and_tiers():
    mem = Memory(hot_bytes=100)
    a = coords.parse_packed("1.1.1/1.1.1/1.1.2")
    b = coords.parse_packed("1.1.1/1.1.1/1.1.1")
    c = coords.parse_packed("9.9.9/9.9.9/9.9.9")
    for x in (c, a, b):
        mem.add(x, np.arange(64, dtype=np.uint8))
    assert mem.table[b].address < mem.table[a].address < mem.table[c].address
    mem.prefetch(a)
    assert mem.tier_bytes() == {"hot": 64, "warm": 128, "cold": 0}
    mem.prefetch(b)  # the arena holds 100 bytes: a is evicted (LRU)
    assert mem.table[a].tier == "warm" and mem.table[b].tier == "hot" and mem.stats.evictions == 1
    mem.flush(c)
    assert mem.table[c].tier == "cold" and mem.stats.flushed_bytes == 64
    assert bytes(mem.table[c].buf) == bytes(range(64))  # read back through the memory map
    mem.close()


def test_row_walk_and_random_access_hit_rates():
    rates = {}
    for name in ("row_walk", "random_access"):
        prog = assemble((PROGRAMS / "memory" / f"{name}.vasm").read_text(), name)
        res = Interpreter(prog).run()
        assert res.status == "ok"
        rates[name] = res.memory.stats.hit_rate
    assert rates["row_walk"] >= 0.95
    assert rates["random_access"] < 0.5


def test_embedding_dedup_program_matches_numpy():
    prog = assemble((PROGRAMS / "memory" / "embedding_dedup.vasm").read_text(), "emb")
    res = Interpreter(prog).run()
    assert res.status == "ok"
    table = np.stack([np.frombuffer(d.data, np.float32) for d in prog.data if d.shape == (16,)])
    tokens = np.frombuffer(next(d.data for d in prog.data if d.dtype == "i32" and not d.zero), np.int32)
    out = np.frombuffer(res.memory.table[prog.coord_names["OUT"]].buf, np.float32).reshape(16, 16)
    assert np.array_equal(out, table[tokens])


def test_safetensors_in_and_out(tmp_path):
    import safetensors.numpy as stn

    inp = tmp_path / "in.safetensors"
    stn.save_file({C1: np.arange(16, dtype=np.float32), C2: np.full(16, 2, np.float32)}, str(inp))
    src = tmp_path / "p.vasm"
    src.write_text(f""".coord A = {C1}
.coord B = {C2}
.coord OUT = 1.1.1/1.1.1/1.1.3
.output OUT.f32
    SCOORD p0, A
    SCOORD p1, B
    SCOORD p2, OUT
    SGATHER.f32 v0, [p0] | DMOV r1, 64
    SGATHER.f32 v1, [p1]
    DMUL.f32 v2, v0, v1  | SALLOC p2, r1
    SSCATTR.f32 [p2], v2
""")
    out = tmp_path / "out.safetensors"
    r = vtpu("run", str(src), "--mem", str(inp), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outputs"][0]["value"] == [2.0 * i for i in range(16)]
    back = stn.load_file(str(out))
    assert list(back) == ["1.1.1/1.1.1/1.1.3"]
    assert np.array_equal(back["1.1.1/1.1.1/1.1.3"].view(np.float32), np.arange(16, dtype=np.float32) * 2)
    r = vtpu("run", str(src), "--mem", str(inp), "--out", str(tmp_path / "all.safetensors"), "--out-all")
    assert set(read_safetensors(str(tmp_path / "all.safetensors"))) == {C1, C2, "1.1.1/1.1.1/1.1.3"}


def test_tensorfile_round_trip_and_bad_names(tmp_path):
    p = tmp_path / "x.safetensors"
    write_safetensors(str(p), {C1: ("bf16", (2,), b"\x80\x3f\x00\x40"), C2: ("i8", (3,), b"\x01\x02\x03")})
    got = read_safetensors(str(p))
    assert got[C1] == ("bf16", (2,), b"\x80\x3f\x00\x40")
    bad = tmp_path / "bad.safetensors"
    write_safetensors(str(bad), {"weights": ("i8", (1,), b"\x01")})
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--mem", str(bad))
    assert r.returncode == 2 and "is not a coordinate" in r.stderr
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 20)
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--mem", str(tmp_path / "junk.safetensors"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_phext_document_loads_as_text_scrolls(tmp_path, run_src):
    from vtpu_cli.machine.phextdoc import write_phext

    doc = tmp_path / "notes.phext"
    write_phext(str(doc), {coords.Coord.parse(C1): "hello", coords.Coord.parse(C2): "world!"})
    src = tmp_path / "p.vasm"
    src.write_text(f".coord T = {C2}\n.output T\n    SCOORD p0, T\n    SGATHER.i8 r1, [p0 + 5]\n")
    r = vtpu("run", str(src), "--mem", str(doc), "--json")
    doc_out = json.loads(r.stdout)
    assert bytes(doc_out["outputs"][0]["value"]) == b"world!"


# ----------------------------------------------------------------------------- hostile --mem headers
def _st_file(tmp_path, header, data: bytes = b"", raw_header: bytes | None = None):
    import struct

    hb = raw_header if raw_header is not None else json.dumps(header).encode()
    p = tmp_path / "h.safetensors"
    p.write_bytes(struct.pack("<Q", len(hb)) + hb + data)
    return p


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({C1: {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, "malformed entry"),
        ({C1: {"dtype": "F32", "shape": "4", "data_offsets": [0, 4]}}, "malformed entry"),
        ({C1: {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, "malformed entry"),
        ({C1: {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, "malformed entry"),
        ({C1: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, "malformed entry"),
        ({C1: {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}, "malformed entry"),
        ({C1: [1, 2]}, "malformed entry"),
        ({C1: {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4]}}, "over the 2.0 GiB"),
        (
            {C1: {"dtype": "F32", "shape": [1 << 28], "data_offsets": [0, 1 << 30]}},
            "inconsistent data offsets",
        ),
        ({C1: {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "bad shape"),
        ({C1: {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, "unsupported dtype F64"),
        (
            {
                C1: {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                C2: {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
            "overlap",
        ),
        ([1, 2, 3], "not a JSON object"),
        ({"__metadata__": 7}, "__metadata__"),
    ],
)
def test_malformed_safetensors_headers_are_clean_errors(tmp_path, header, message):
    from vtpu_cli.core.errors import FormatError

    p = _st_file(tmp_path, header, bytes(8))
    with pytest.raises(FormatError, match=message):
        read_safetensors(str(p))


def test_deep_json_huge_header_and_duplicates_in_safetensors(tmp_path):
    from vtpu_cli.core.errors import FormatError

    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(FormatError, match="nested too deeply|corrupt"):
        read_safetensors(str(_st_file(tmp_path, None, raw_header=deep)))
    dup = b'{"a": 1, "a": 2}'
    with pytest.raises(FormatError, match="appears twice"):
        read_safetensors(str(_st_file(tmp_path, None, raw_header=dup)))
    p = tmp_path / "huge.safetensors"
    p.write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    with pytest.raises(FormatError, match="header length"):
        read_safetensors(str(p))
    ok = _st_file(tmp_path, {C1: {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(16))
    with pytest.raises(FormatError, match="exceed the memory budget"):
        read_safetensors(str(ok), max_bytes=8)
    assert read_safetensors(str(ok))[C1] == ("f32", (4,), bytes(16))


def test_hostile_mem_file_through_the_cli_is_exit_2_without_traceback(tmp_path):
    p = _st_file(tmp_path, {C1: {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, bytes(4))
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--mem", str(p))
    assert r.returncode == 2 and "malformed entry" in r.stderr and "Traceback" not in r.stderr
    deep = _st_file(tmp_path, None, raw_header=b"{" * 100_000)
    r = vtpu("run", str(PROGRAMS / "dot.vasm"), "--mem", str(deep))
    assert r.returncode == 2 and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- the memory budget
def _run_env(*args: str, env: dict[str, str]):
    """`vtpu ARGS` in a subprocess with extra environment variables."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **env),
    )


def test_memory_budget_is_enforced_before_allocation():
    from vtpu_cli.machine.memory import MemoryLimitError

    mem = Memory(mem_limit=1000)
    mem.alloc(coords.parse_packed(C1), 600, 64, 0)
    with pytest.raises(MemoryLimitError, match="would exceed the memory budget of 1000 B"):
        mem.alloc(coords.parse_packed(C2), 600, 64, 0)
    assert coords.parse_packed(C2) not in mem.table
    mem.free(coords.parse_packed(C1))
    assert mem.used_bytes == 0
    mem.alloc(coords.parse_packed(C2), 1000, 64, 0)  # freed bytes return to the budget
    assert mem.used_bytes == 1000 and mem.peak_bytes == 1000
    # a scroll replaced behind Memory's back (as the runner does for --mem) is re-counted
    mem.table.pop(coords.parse_packed(C2))
    mem._order.clear()
    mem.add(coords.parse_packed(C1), np.zeros(900, np.uint8))
    assert mem.used_bytes == 900


def test_salloc_over_the_budget_faults_on_both_engines(tmp_path):
    src = tmp_path / "big.vasm"
    src.write_text(f"""    SCOORD p0, {C1}
    SALLOC p0, 0x100000
    SCOORD p1, {C2}
    SALLOC p1, 0x100000
""")
    for engine in ("interp", "jit"):
        r = _run_env("run", str(src), "--engine", engine, env={"VTPU_MEM_LIMIT": "1.5M"})
        assert r.returncode == 1, (engine, r.stderr)
        assert "SALLOC of 1.0 MiB would exceed the memory budget of 1.5 MiB" in r.stderr
        r = _run_env("run", str(src), "--engine", engine, env={"VTPU_MEM_LIMIT": "3M"})
        assert r.returncode == 0, (engine, r.stderr)


def test_memory_limit_setting_is_parsed_and_bad_values_are_usage_errors(tmp_path, monkeypatch):
    from vtpu_cli.binary import limits
    from vtpu_cli.core.errors import VtpuError

    assert limits.parse_size("512M") == 512 << 20
    assert limits.parse_size("4GiB") == 4 << 30
    assert limits.parse_size("1.5k") == 1536
    assert limits.parse_size("4096") == 4096
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(ValueError):
            limits.parse_size(bad)
    monkeypatch.delenv(limits.MEM_LIMIT_ENV, raising=False)
    assert limits.default_memory_budget() == int(limits.physical_memory() * limits.MEM_LIMIT_FRACTION)
    assert Memory().mem_limit == limits.default_memory_budget()
    monkeypatch.setenv(limits.MEM_LIMIT_ENV, "nonsense")
    with pytest.raises(VtpuError, match="VTPU_MEM_LIMIT"):
        Memory()
    r = _run_env("run", str(PROGRAMS / "dot.vasm"), env={"VTPU_MEM_LIMIT": "nonsense"})
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_program_data_over_the_budget_is_refused_at_load(tmp_path):
    src = tmp_path / "z.vasm"
    src.write_text(f".zero {C1} u8 3000000\n    DHALT\n")
    r = _run_env("run", str(src), env={"VTPU_MEM_LIMIT": "1M"})
    assert r.returncode == 2 and "memory budget" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- the cold-tier file
def _cold_files(tmpdir) -> list:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("vtpu-cold-"))


def test_cold_tier_file_never_has_a_name(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mem = Memory()
    c = coords.parse_packed(C1)
    mem.add(c, np.arange(64, dtype=np.uint8))
    mem.flush(c)
    assert mem.table[c].tier == "cold" and bytes(mem.table[c].buf) == bytes(range(64))
    assert _cold_files(tmp_path) == []  # unlinked as it was created: nothing to leave behind
    mem.close()


@pytest.mark.parametrize("how", ["exit", "sigterm", "sigint", "sigkill"])
def test_cold_tier_file_is_gone_on_every_exit_path(tmp_path, how):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "flush.vasm"
    src.write_text(f"""    SCOORD p0, {C1}
    SALLOC p0, 4096
    SFLUSH p0
    DMOV r1, {1 if how == "exit" else 0}
spin:
    DCMP.eq.i64 r2, r1, 0
    DBRT spin
""")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    cmd = [sys.executable, "-m", "vtpu_cli.cli.main", "run", str(src), "--engine", "interp"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=interruptible
    )
    if how != "exit":
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal({"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sigkill": signal.SIGKILL}[how])
    proc.wait(timeout=60)
    assert _cold_files(tmp_path) == []


def test_phext_document_over_the_budget_is_refused_before_reading(tmp_path):
    from vtpu_cli.core.errors import FormatError
    from vtpu_cli.machine.phextdoc import read_phext

    doc = tmp_path / "big.phext"
    doc.write_text("x" * 5000 + "\x17" + "y")
    with pytest.raises(FormatError, match="exceeds the memory budget of 4.0 KiB"):
        read_phext(str(doc), max_bytes=4096)
    assert len(read_phext(str(doc))) == 2


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_a_host_out_of_memory_while_loading_is_a_clean_error(tmp_path, engine):
    """A 1 KB program whose zero scrolls (8 x 400 MB, within the budget) the host cannot give -- here an
    address-space limit of 2.4 GB -- ends with exit 2 naming the scroll, not a Python MemoryError."""
    import os
    import resource
    import subprocess
    import sys

    src = "".join(f"input x{i}: f32[100000000]\n" for i in range(8))
    src += "output y: f32[16]\nlet a: f32x16 = load(x7, 0)\nstore(y, 0, a)\n"
    (tmp_path / "big.phx").write_text(src)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2_400_000_000, 2_400_000_000))

    r = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.cli.main", "run", str(tmp_path / "big.phx"), "--engine", engine],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env=dict(os.environ, VTPU_MEM_LIMIT="16G"),  # (the host, not the budget, must be what refuses)
    )
    assert r.returncode == 2, r.stderr
    assert "out of host memory loading scroll" in r.stderr and "Traceback" not in r.stderr


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 300), st.sampled_from([1, 8, 64])),
        min_size=1,
        max_size=40,
    )
)
def test_incremental_placement_equals_placing_everything_again(steps):
    """Scrolls added (and freed) in any coordinate order: the addresses placed from the insertion
    point on are those of placing every scroll again in Z-order."""
    mem = Memory()
    for add, k, size, align in steps:
        c = coords.parse_packed(f"1.1.1/1.1.1/1.{1 + k // 9}.{1 + k % 9}")
        if add and c not in mem.table:
            mem.add(c, np.zeros(size, np.uint8), align=align)
        elif not add and c in mem.table:
            mem.free(c)
        got = {c: sc.address for c, sc in mem.table.items()}
        mem._place()  # from the first scroll
        assert got == {c: sc.address for c, sc in mem.table.items()}
