"""Bounds checks of the JIT's S-pipe lowering against the interpreter, at the edges.

The contiguous and span checks are one unsigned compare against ``max(size - n + 1, 0)`` and the
indexed check compares the i32 indexes with bounds derived from the offset and the scroll size
(``lowering._ends``, ``lowering._index_out_of_range``): these tests draw offsets, indexes and scroll
sizes around every boundary (negative offsets, offsets near 2**62, indexes at the i32 extremes, scrolls
shorter than the access) and require the same result -- or the same fault at the same SIW and slot --
as the golden model, with the native code running (``both`` asserts it).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble

pytest.importorskip("llvmlite")

from test_jit import both  # noqa: E402

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1

_IDX = st.one_of(
    st.integers(-3, 80),
    st.sampled_from([I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, -(1 << 30), 1 << 29, 63, 64, 65]),
)
_OFF = st.one_of(
    st.integers(-8, 16),
    st.integers(-300, 600),
    st.sampled_from([(1 << 62) - 4, 1 << 62, (1 << 62) + 4, -(1 << 62), -(1 << 62) - 4, 1 << 40, -(1 << 33)]),
)


def _prog(size: int, idx: list[int], off: int, t: str, store: bool, loop: int) -> str:
    data = ", ".join(str((i * 29 + 7) % 251) for i in range(size))
    access = f"SSCATTR.{t} [p0 + r2 + v1], v3" if store else f"SGATHER.{t} v2, [p0 + r2 + v1]"
    return f"""
.coord X = 1.2.2/1.1.1/1.1.1
.coord I = 1.2.2/1.1.1/1.1.2
.data X u8[{size}] {data}
.data I i32[16] {", ".join(map(str, idx))}
    SCOORD p0, X                      | DMOV r2, {off}
    SCOORD p1, I                      | DMOV r1, {loop}
    SGATHER.i32 v1, [p1]              | DBCAST.i32 v3, 77
loop:
    {access}
    DADD.i32 v3, v3, 1
    DLOOP r1, loop
"""


_EDGES = st.tuples(
    st.sampled_from([1, 3, 4, 8, 60, 64, 252, 256, 257, 300, 1024]),
    st.lists(_IDX, min_size=16, max_size=16),
    _OFF,
)
# mostly in range: the window (< 256 bytes) and per-lane paths, one index sometimes past the end
_INSIDE = st.tuples(
    st.sampled_from([256, 257, 300, 512, 1024]),
    st.lists(st.integers(0, 40), min_size=16, max_size=16),
    st.sampled_from([0, 4, 8, 64, 100, 128, 2]),
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    case=st.one_of(_EDGES, _INSIDE),
    t=st.sampled_from(["i32", "f32", "i64"]),
    store=st.booleans(),
    loop=st.sampled_from([1, 3]),
)
def test_indexed_access_bounds_match_the_interpreter(case, t, store, loop):
    size, idx, off = case
    prog = assemble(_prog(size, idx, off, t, store, loop))
    ref, res, diffs = both(prog)
    assert diffs == [], diffs
    assert res.status == ref.status


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 200])
@pytest.mark.parametrize("off", [-1, 0, 1, 4, 60, 64, 72, 136, -(1 << 62), (1 << 62) + 8, (1 << 63) - 1])
def test_contiguous_and_span_bounds_match_the_interpreter(size, off):
    """Contiguous scalar and vector accesses, partial vectors and constant-stride span loads (124 bytes)
    at every edge of the scroll (sizes below the access width included)."""
    data = ", ".join(str(i % 256) for i in range(size)) if size else ""
    decl = f".data X u8[{size}] {data}" if size else ".zero X u8[0]"
    for access in (
        "SGATHER.i64 r3, [p0 + r2]",
        "SSCATTR.i32 [p0 + r2], r1",
        "SGATHER.f32 v2, [p0 + r2]",
        "SSCATTR.i32 [p0 + r2], v2",
        "SGATHER.i32 v2, [p0 + r2 : 8]",
        "SGATHER.i32 v2, [p0 + r2 : 4]",
    ):
        prog = assemble(f"""
.coord X = 1.2.2/1.1.1/1.1.1
{decl}
    SCOORD p0, X                      | DMOV r2, {off}
    DMOV r1, 2
loop:
    {access}
    DLOOP r1, loop
""")
        ref, res, diffs = both(prog)
        assert diffs == [], (access, diffs)
        assert res.status == ref.status, access


# ---------------------------------------------------------------- bounds proved once per fast clone entry
_STREAM = """
.coord X = 1.2.2/1.1.1/1.1.1
.coord Y = 1.2.2/1.1.1/1.1.2
.coord PARAMS = 1.2.2/1.1.9/1.1.1
.data X u8[{xsize}] {xdata}
.zero Y u8[{ysize}]
.data PARAMS i64[3] {iters}, {mask}, {start}
.output r7
    SCOORD p0, PARAMS
    SGATHER.i64 r1, [p0]
    SGATHER.i64 r5, [p0 + 8]
    SGATHER.i64 r2, [p0 + 16]         | DMOV r7, 0
    SCOORD p0, X
    SCOORD p1, Y
loop:
    DADD r3, r2, {step}               | SGATHER.f32 v1, [p0 + r2]
    DAND r3, r3, {andop}              | SGATHER.i32 v2, [p0 + r2 : 4]
    DADD r10, r3, 8                   | SSCATTR.f32 [p1 + r3], v1
                                      | SGATHER.i64 r6, [p0 + r10]
    DADD r7, r7, r6                   | SSCATTR.i32 [p1 + r2 : 8], v2
    DMOV r2, r3
    {extra}
    DLOOP r1, loop
"""


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    xsize=st.sampled_from([64, 100, 128, 256, 264, 1024, 1032, 1032, 1032]),
    ysize=st.sampled_from([0, 64, 128, 256, 1024, 1024, 1024]),
    iters=st.integers(1, 6),
    mask=st.sampled_from([63, 127, 192, 255, 255, 255, 1023, 1 << 41, -1]),
    start=st.sampled_from([0, 0, 0, 64, 128, 1000, 1 << 42]),
    step=st.sampled_from([0, 64, 100]),
    andop=st.sampled_from(["r5", "255", "r1"]),
    extra=st.sampled_from(["", "DADD r2, r2, 1", "DMOV r5, 4095"]),
)
def test_stream_offsets_bounded_by_a_mask(xsize, ysize, iters, mask, start, step, andop, extra):
    """Offsets that walk a working set with DADD + DAND (the phase-0 shape): the fast clone's dispatch
    proves them in bounds once per entry and drops their checks; masks larger than a scroll, start
    offsets above the mask, a mask register that changes in the loop (no proof) and an offset moved
    after the DAND (no proof) must give the interpreter's result or fault at the same SIW and slot."""
    xdata = ", ".join(str((i * 7 + 1) % 256) for i in range(xsize))
    prog = assemble(
        _STREAM.format(
            xsize=xsize,
            xdata=xdata,
            ysize=ysize,
            iters=iters,
            mask=mask,
            start=start,
            step=step,
            andop=andop,
            extra=extra,
        )
    )
    ref, res, diffs = both(prog)
    assert diffs == [], diffs
    assert res.status == ref.status


def test_bounded_offsets_analysis():
    """What the dispatch may prove: a DAND by a loop-invariant register (or an immediate) bounds the
    offset (aligned as far as its input is), DADD of a small immediate and DMOV carry the bound, any
    other write forgets it, and a bound the body does not re-establish at the back edge does not hold
    at the head."""
    from vtpu_cli.engines.jit import compile as C
    from vtpu_cli.engines.jit.compile import Bound

    def analyse(extra: str, step: int = 64):
        prog = assemble(
            _STREAM.format(
                xsize=64,
                xdata=", ".join(["1"] * 64),
                ysize=64,
                iters=2,
                mask=63,
                start=0,
                step=step,
                andop="r5",
                extra=extra,
            )
        )
        ((t, (last, *_)),) = C._fast_loops(prog, C._leaders(prog)).items()
        return C._bounded_offsets(prog, t, last)

    head, proven = analyse("")
    z = Bound(5, 0, 0, 6)  # r & r5, a multiple of 64 (the step keeps the alignment)
    assert head == {2: z, 3: z, 10: Bound(5, 0, 8, 6)}
    # (SIW from the loop head, slot) -> (p, bytes, bound); the strided scatter is not a range check
    got = {(pc - 6, slot): v for (pc, slot), v in proven.items()}
    assert got == {
        (0, 1): (0, 64, z),
        (1, 1): (0, 64, z),  # 16 x i32, stride 4: a 64-byte span
        (2, 1): (1, 64, z),
        (3, 1): (0, 8, Bound(5, 0, 8, 6)),
    }
    head, _ = analyse("", step=100)  # 100 = 4 * 25: only 4-byte alignment survives
    assert head[2] == Bound(5, 0, 0, 2)
    head, proven = analyse("DADD r2, r2, 1")  # r2 ends one above the masked value
    assert head[2] == Bound(5, 0, 1, 0) and proven[(6, 1)] == (0, 64, Bound(5, 0, 1, 0))
    head, proven = analyse("DSUB r2, r2, 1")  # any other write: r2 unbounded at the head
    assert 2 not in head and (6, 1) not in proven and (7, 1) not in proven and (8, 1) in proven
    head, proven = analyse("DMOV r5, 4095")  # the mask changes inside the loop: no access is proven
    assert head == {5: Bound(None, 0, 4095, C._ALIGN_TOP)} and proven == {}


_TABLE = """
.coord X = 1.2.2/1.1.1/1.1.1
.coord T = 1.2.2/1.1.1/1.1.3
.coord Y = 1.2.2/1.1.2/1.1.1
.coord PARAMS = 1.2.2/1.1.9/1.1.1
.data X i32[256] {xdata}
.data T u8[{tsize}] {tdata}
.zero Y u8[1024]
.data PARAMS i64[2] {iters}, 1023
.output r7
    SCOORD p0, PARAMS
    SGATHER.i64 r1, [p0]
    SGATHER.i64 r5, [p0 + 8]          | DMOV r2, 0
    SCOORD p0, X
    SCOORD p1, Y
    SCOORD p2, T
loop:
    DADD r3, r2, 64                   | SGATHER.i32 v8, [p0 + r2]
    DAND.{dtype} v12, v8, {c}
    {between}
    DAND r3, r3, r5                   | {access}
    DADD.i32 v11, v10, 1              | SSCATTR.i32 [p1 + r2], v10
    DMOV r2, r3
    DLOOP r1, loop
"""


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    tsize=st.sampled_from([60, 64, 128, 252, 256, 260, 512]),
    c=st.sampled_from([0, 15, 31, 63, 64, 127]),
    off=st.sampled_from([0, 4, 6, 8, 64, 192]),
    kind=st.sampled_from(["i32", "f32", "i64", "scatter"]),
    iters=st.integers(1, 4),
    dtype=st.sampled_from(["i32", "i32", "i32", "i16", "i64"]),
    between=st.sampled_from(["", "", "DADD.i32 v12, v12, 1"]),
)
def test_indexed_access_bounded_by_a_masked_index(tsize, c, off, kind, iters, dtype, between):
    """Indexes masked by ``DAND.i32 v, x, c`` in the same trip: the fast clone's dispatch proves the
    table access in bounds (and inside the 256-byte permute window) once per entry; tables too small
    for the mask, offsets that break the window's alignment, an index changed after the mask and masks
    of other lane widths must give the interpreter's result or fault at the same SIW and slot."""
    xdata = ", ".join(str((i * 37 + 11) % 1000) for i in range(256))
    tdata = ", ".join(str((i * 13 + 5) % 256) for i in range(tsize))
    access = {
        "i32": f"SGATHER.i32 v10, [p2 + {off} + v12]",
        "f32": f"SGATHER.f32 v10, [p2 + {off} + v12]",
        "i64": f"SGATHER.i64 v10, [p2 + {off} + v12]",
        "scatter": f"SSCATTR.i32 [p2 + {off} + v12], v8",
    }[kind]
    if kind == "scatter":
        access += "\n    SGATHER.i32 v10, [p2]"
    prog = assemble(
        _TABLE.format(
            xdata=xdata,
            tsize=tsize,
            tdata=tdata,
            iters=iters,
            c=c,
            dtype=dtype,
            access=access,
            between=between,
        )
    )
    ref, res, diffs = both(prog)
    assert diffs == [], diffs
    assert res.status == ref.status


def test_bounded_indexes_analysis():
    """A DAND.i32 by an immediate bounds every index lane until the register is written again; the
    window is claimed only for 16 x 32-bit gathers whose lanes stay below 256 bytes, 4-aligned."""
    from vtpu_cli.engines.jit import compile as C

    def analyse(kind: str, c: int, off: int, dtype: str = "i32", between: str = ""):
        access = {
            "i32": f"SGATHER.i32 v10, [p2 + {off} + v12]",
            "i64": f"SGATHER.i64 v10, [p2 + {off} + v12]",
            "scatter": f"SSCATTR.i32 [p2 + {off} + v12], v8\n    SGATHER.i32 v10, [p2]",
        }[kind]
        prog = assemble(
            _TABLE.format(
                xdata=", ".join(["0"] * 256),
                tsize=256,
                tdata=", ".join(["0"] * 256),
                iters=2,
                c=c,
                dtype=dtype,
                access=access,
                between=between,
            )
        )
        ((t, (last, *_)),) = C._fast_loops(prog, C._leaders(prog)).items()
        return {(pc - t, slot): v for (pc, slot), v in C._bounded_indexes(prog, t, last).items()}

    at = (2, 1)  # the access: SIW 2 of the loop (an empty {between} line is no SIW), S slot
    assert analyse("i32", 63, 0) == {at: (2, 0, 4, 63, True)}
    assert analyse("i32", 63, 4) == {at: (2, 4, 4, 63, False)}  # lane 63 ends past 256 bytes
    assert analyse("i32", 15, 6) == {at: (2, 6, 4, 15, False)}  # not dword-aligned: no window
    assert analyse("i64", 15, 0) == {at: (2, 0, 8, 15, False)}
    assert analyse("scatter", 63, 0) == {at: (2, 0, 4, 63, False)}
    assert analyse("i32", 63, 0, dtype="i16") == {}  # i16 lanes & 63: an i32 lane can exceed 63
    assert analyse("i32", 63, 0, between="DADD.i32 v12, v12, 1") == {}  # written after the mask


# ---------------------------------------------------------------- the one-sentron ring's invariant (off)
_RING_LOOP = """
.coord X = 1.2.2/1.1.1/1.1.1
.data X i32[64] {data}
.output r6
    SCOORD p0, X                      | DMOV r1, {iters}
    DMOV r2, 0
    DMOV r6, 0
{pre}
loop:
                                      | SGATHER.i32 v1, [p0]
    DADD r2, r2, 1                    |                           | CPACK.i32 m0, v1
                                      |                           | CSEND m0, 0
                                      |                           | CPACK.i64 m2, r2
                                      |                           | CSEND m2, 0
{mid}
                                      |                           | CRECV m1, 0
                                      |                           | CUNPACK.i32 v2, m1
                                      |                           | CRECV m3, 0
                                      |                           | CUNPACK.i64 r5, m3
    DADD r6, r6, r5                   | SSCATTR.i32 [p0 + 64], v2
    DLOOP r1, loop
"""


@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("invariant", [False, True])
@pytest.mark.parametrize(
    "iters,pre,mid",
    [
        (3, "", ""),
        (
            20,
            "",
            "                                      |                           | CSEND m0, 0",
        ),  # fills up: deadlock
        (2, "                                      |                           | CRECV m1, 0", ""),  # empty
        (5, "                                      |                           | CSEND m0, 0", ""),
    ],
)
def test_ring_invariant_keeps_queue_semantics(monkeypatch, static, invariant, iters, pre, mid):
    """comm.QUEUE_INVARIANT (``head <= tail`` stated to LLVM, on by default) and comm.STATIC_LENGTHS
    (lengths and occupancy proved at compile time, on by default): self-messages through the one-sentron
    ring give the interpreter's result either way, including a ring that fills up (deadlock at the 17th
    message) and a receive from an empty ring."""
    from vtpu_cli.engines.jit import comm

    monkeypatch.setattr(comm, "QUEUE_INVARIANT", invariant)
    monkeypatch.setattr(comm, "STATIC_LENGTHS", static)
    prog = assemble(_RING_LOOP.format(data=", ".join(map(str, range(64))), iters=iters, pre=pre, mid=mid))
    ref, res, diffs = both(prog, no_cache=True)
    assert diffs == [], diffs
    assert res.status == ref.status


@pytest.mark.parametrize("name", ["balanced", "double_buffer", "c_heavy"])
def test_ring_invariant_keeps_the_counted_work(monkeypatch, name):
    """With the invariant on, the C-pipe programs still move every counted message through the ring's
    memory (c_heavy's 8-byte i64 message with an 8-byte load: a scalar message is a scalar access)."""
    from vtpu_cli.bench.native import missing_work
    from vtpu_cli.bench.suite import assemble_program, load_manifests
    from vtpu_cli.engines.jit import comm

    monkeypatch.setattr(comm, "QUEUE_INVARIANT", True)
    m = {m.name: m for m in load_manifests()}[name]
    _, nat, lost = missing_work(assemble_program(m, m.params_for("full")))
    assert lost == [], lost


# ---------------------------------------------------------------- the one-sentron ring's static lengths
# comm.ring_lengths proves the length of the message each CRECV receives; the native code then neither
# stores nor loads the length word beside the payload. These programs mix message lengths (vector and
# every scalar type), send registers never packed (their length comes from the context), skip sends
# and receives on data-dependent branches (paths that meet with different queues) and may fill or drain
# the ring: the JIT must match the interpreter's registers, messages and lengths included.
_PACKS = [("v1", t) for t in ("f32", "i32", "i8")] + [("r2", t) for t in ("i8", "i16", "i32", "i64", "f32")]


@st.composite
def _ring_program(draw) -> str:
    def c(op: str) -> str:
        return f"{'':38}|{'':27}| {op}"

    def pack(m: int) -> str:
        src, t = draw(st.sampled_from(_PACKS))
        return c(f"CPACK.{t} m{m}, {src}")

    body: list[str] = []
    labels = 0
    queued = 0  # messages sent and not yet received in this trip (receives mostly find one)
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(
            st.sampled_from(["send", "send", "send", "recv", "recv", "recv", "unpack", "skip", "pack"])
        )
        m = draw(st.integers(0, 3))
        if kind == "pack":
            body.append(pack(m))
        elif kind == "send":
            if draw(st.integers(0, 3)):
                body.append(pack(m))
            body.append(c(f"CSEND m{m}, 0"))
            queued += 1
        elif kind == "recv" and (queued or draw(st.integers(0, 5)) == 0):
            body.append(c(f"CRECV m{m}, {draw(st.sampled_from(['0', '-1']))}"))
            queued -= 1
        elif kind == "unpack":
            body.append(c(f"CUNPACK.{draw(st.sampled_from(['i64', 'i8', 'f32']))} r{3 + m}, m{m}"))
            body.append("    DADD r6, r6, r" + str(3 + m))
        elif kind == "skip":  # skip the next op on odd trips: the paths meet with different queues or lengths
            labels += 1
            op = draw(st.sampled_from(["CSEND m0, 0", "CRECV m1, 0", "CPACK.i16 m0, r2", "CPACK.f32 m0, v1"]))
            body += [
                "    DAND r7, r1, 1",
                "    DCMP.eq r9, r7, 0",
                f"    DBRT skip{labels}",
                c(op),
                f"skip{labels}:",
            ]
    # receive what is left (mostly): the queue at the loop head is then the same every trip
    body += [
        c(f"CRECV m{draw(st.integers(0, 3))}, 0") for _ in range(max(queued - draw(st.integers(0, 1)), 0))
    ]
    pre = [pack(k) for k in range(draw(st.integers(0, 4)))]
    pre += [c(f"CSEND m{draw(st.integers(0, 3))}, 0") for _ in range(draw(st.integers(0, 2)))]
    iters = draw(st.integers(1, 6))
    return "\n".join(
        [
            ".output r6",
            f"    DMOV r1, {iters}",
            "    DMOV r2, -1234567",
            "    DMOV r6, 0",
            "    DBCAST.f32 v1, -2.75",
            *pre,
            "loop:",
            *body,
            "    DADD r2, r2, 977",
            "    DLOOP r1, loop",
        ]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ring_program())
def test_ring_static_lengths_match_the_interpreter(src):
    prog = assemble(src)
    ref, res, diffs = both(prog, no_cache=True)
    assert diffs == [], (diffs, src)
    assert res.status == ref.status


def _lengths(src: str):
    from vtpu_cli.engines.jit.comm import ring_lengths

    prog = assemble(src)
    known, every = ring_lengths(prog)
    recvs = [pc for pc, siw in enumerate(prog.code) if any(i.op.name == "CRECV" for i in siw)]
    return [known.get(pc) for pc in recvs], every


def test_ring_lengths_analysis():
    C = f"{'':38}|{'':27}| "
    loop = "\n".join(
        [
            "    DMOV r1, 5",
            "loop:",
            C + "CPACK.i64 m2, r1",
            C + "CSEND m2, 0",
            C + "CPACK.f32 m0, v1",
            C + "CSEND m0, 0",
            C + "CRECV m3, 0",
            C + "CRECV m1, 0",
            "    DLOOP r1, loop",
        ]
    )
    assert _lengths(loop) == ([8, 64], True)  # c_heavy's pattern: FIFO order, mixed lengths
    # a register never packed: its length comes from the context
    assert _lengths(C + "CSEND m0, 0\n" + C + "CRECV m1, 0") == ([None], False)
    # forwarding a received message keeps its length
    fwd = "\n".join(
        [C + "CPACK.i16 m0, r1", C + "CSEND m0, 0", C + "CRECV m1, 0", C + "CSEND m1, 0", C + "CRECV m2, 0"]
    )
    assert _lengths(fwd) == ([2, 2], True)
    # a loop that sends more than it receives: the queue at the head is unknown
    grow = "\n".join(
        [
            "    DMOV r1, 3",
            C + "CPACK.i8 m0, r1",
            "l:",
            C + "CSEND m0, 0",
            C + "CSEND m0, 0",
            C + "CRECV m1, 0",
            "    DLOOP r1, l",
        ]
    )
    assert _lengths(grow) == ([None], False)
    # paths that meet with different lengths in the queue
    br = "\n".join(
        [
            C + "CPACK.i8 m0, r1",
            "    DCMP.eq r9, r1, 0",
            "    DBRT other",
            C + "CPACK.i32 m0, r1",
            "other:",
            C + "CSEND m0, 0",
            C + "CRECV m1, 0",
        ]
    )
    assert _lengths(br) == ([None], False)
    # a receive from an empty ring (a deadlock) is not a known length; one after DHALT is unreachable
    assert _lengths(C + "CRECV m1, 0") == ([None], False)
    halt = "\n".join(
        [C + "CPACK.f32 m0, v1", C + "CSEND m0, 0", C + "CRECV m1, 0", "    DHALT", C + "CRECV m2, 0"]
    )
    assert _lengths(halt) == ([64, None], True)


def test_ring_occupancy_analysis():
    """The messages in the ring before each C op, where every path agrees: a send there is not tested for
    a full ring (below 16), a receive not for an empty one (above 0)."""
    from vtpu_cli.engines.jit.comm import ring_analysis

    C = f"{'':38}|{'':27}| "
    src = "\n".join(
        [C + "CPACK.f32 m0, v1"]
        + [C + "CSEND m0, 0"] * 17
        + ["    DMOV r1, 2", "l:", C + "CRECV m1, 0", C + "CSEND m1, 0", "    DLOOP r1, l"]
    )
    prog = assemble(src)
    _, _, occ = ring_analysis(prog)
    sends = [pc for pc, siw in enumerate(prog.code) if siw[2].op.name == "CSEND"]
    assert [occ.get(pc) for pc in sends[:17]] == list(range(17))  # the 17th (16 queued) keeps its test
    loop = assemble(
        "\n".join(
            [
                "    DMOV r1, 3",
                "l:",
                C + "CSEND m0, 0",
                C + "CSEND m0, 0",
                C + "CRECV m1, 0",
                "    DLOOP r1, l",
            ]
        )
    )
    _, _, occ = ring_analysis(loop)
    assert all(
        occ.get(pc) is None for pc, siw in enumerate(loop.code) if siw[2].op.name in ("CSEND", "CRECV")
    )


@pytest.mark.parametrize(
    "body",
    [
        ["CPACK.f32 m0, v1"] + ["CSEND m0, 0"] * 17,  # the 17th send: full (a deadlock)
        ["CPACK.i8 m0, r2", "CSEND m0, 0", "CRECV m1, 0", "CRECV m2, 0"],  # the second receive: empty
        ["CPACK.i8 m0, r2"] + ["CSEND m0, 0"] * 16 + ["CRECV m1, 0"] * 16 + ["CUNPACK.i8 r6, m1"],
    ],
)
def test_ring_known_occupancy_keeps_full_and_empty(body):
    C = f"{'':38}|{'':27}| "
    prog = assemble(
        "\n".join([".output r6", "    DMOV r2, -77", "    DBCAST.f32 v1, 0.5"] + [C + op for op in body])
    )
    ref, res, diffs = both(prog, no_cache=True)
    assert diffs == [], diffs
    assert res.status == ref.status


@pytest.mark.parametrize("name", ["balanced", "double_buffer", "c_heavy"])
def test_ring_lengths_of_the_bench_programs(name):
    """Every receive of the phase-0 C-pipe programs has a proved length, so their loops store and load no
    length words: a CSEND is its payload store and a CRECV its payload load (still through memory)."""
    from vtpu_cli.bench.native import native_counts, source_counts
    from vtpu_cli.bench.suite import assemble_program, load_manifests
    from vtpu_cli.engines.jit.comm import ring_lengths

    m = {m.name: m for m in load_manifests()}[name]
    prog = assemble_program(m, m.params_for("full"))
    known, every = ring_lengths(prog)
    assert every and known
    src, nat = source_counts(prog), native_counts(prog).per_trip()
    assert nat["writes"] == src["writes"], (nat, src)  # payload stores and S stores, nothing beside
