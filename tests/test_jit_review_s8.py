"""Tier-0 code shared between programs of one shape (docs/jit.md, "Tiers"): tier 0 reads the immediates
of ``DMOV r, imm`` and scalar i64 ``DADD``/``DSUB r, r, imm`` from a table its loader fills, so that
programs differing only in them can share one compiled object. Whatever is shared, every program must
still run exactly as the interpreter runs it -- with its own values, run one after another or compiled
at the same time, faulting (or stopping at a step limit) where the interpreter does."""

from __future__ import annotations

import gc
import threading
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_jit import _interp_ok, programs

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.binary.program import Imm, Program, Reg
from vtpu_cli.engines.compare import same_result
from vtpu_cli.engines.interp.interpreter import Interpreter

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
if not jit.jit_available()[0]:  # pragma: no cover
    pytest.skip("JIT unavailable", allow_module_level=True)

from vtpu_cli.engines.jit import compile as C  # noqa: E402

STEPS = 20_000  # programs the interpreter does not finish in this many SIWs are not drawn


def _liftable(ins) -> bool:
    """The immediates tier 0 may read from its table (whether it does is the compiler's choice)."""
    a = ins.args
    if ins.op.name == "DMOV":
        return isinstance(a[1], Imm) and a[0].cls != "v"
    return (
        ins.op.name in ("DADD", "DSUB")
        and ins.type == "i64"
        and a[0].cls == "r"
        and isinstance(a[1], Reg)
        and isinstance(a[2], Imm)
    )


def _with_imms(prog: Program, values) -> Program:
    """``prog`` with its liftable immediates replaced, one value per call of ``values(ins)`` (None: keep)."""
    code = []
    for siw in prog.code:
        new = []
        for ins in siw:
            if _liftable(ins):
                x = values(ins)
                if x is not None:
                    ins = replace(ins, args=(*ins.args[:-1], Imm(x)))
            new.append(ins)
        code.append(tuple(new))
    return replace(prog, code=code)


def _exact(res, ref) -> None:
    assert res.engine == "jit" and res.tier == 0, res.fallback
    assert same_result(ref, res) == []
    assert res.siws == ref.siws and res.ops_by_pipe == ref.ops_by_pipe
    if len(ref.sentrons) == 1:
        assert (res.memory.stats.hits, res.memory.stats.misses) == (
            ref.memory.stats.hits,
            ref.memory.stats.misses,
        )
    if res.native_faults and len(ref.sentrons) == 1:  # where the native code stopped: the same place
        (sid, pc, slot), f = res.native_faults[0], ref.fault
        assert (sid, pc, "DSC"[slot]) == (f.sentron, f.siw, f.pipe)


def _tier0(prog, tmp, sentrons: int = 1, precise_replay: bool = False, **kw):
    eng = jit.JitEngine(prog, sentrons, opt=C.TIER0_OPT, cache_dir=tmp, **kw)
    if precise_replay:
        eng.replay_interp_steps = -1  # a faulting run replays natively (precise tier-0 code)
    return eng.run()


@pytest.fixture
def compiles(monkeypatch):
    """A fresh table of tier-0 jobs, and the IR texts LLVM compiled (every ``_compile_object``)."""
    texts: list[str] = []
    real = C._compile_object

    def counted(text, v, opt):
        texts.append(text)
        return real(text, v, opt)

    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_compile_object", counted)
    return texts


def _variant(sentrons: int = 1):
    C._init()
    cpu, feat = C.host_target()
    return C._Variant("none", False, 64, cpu, feat, 4, False, sentrons == 1, C.jit_comm.RACE_CHECK)


def _tier0_text(prog, sentrons: int = 1) -> str:
    return C.build_tier0(prog, _variant(sentrons))[0]


# =================================================================== random programs, immediates redrawn
_VALUES = st.one_of(
    st.integers(-3, 3),
    st.integers(-300, 300),
    st.integers(0, 2**32 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1 - 2**63, 0x7FC00000, 0xFFFFFFFF]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(prog=programs(), data=st.data(), precise=st.booleans())
def test_random_programs_of_one_shape_each_run_with_their_own_immediates(
    tmp_path_factory, monkeypatch, prog, data, precise
):
    """Differential: a random program and two copies with their liftable immediates redrawn, run on
    tier 0 one after another in one process (the later ones may take the first one's object): each
    exact against the interpreter, native fault locations included."""
    monkeypatch.setattr(C, "_TIER0_JOBS", {})

    def redraw(ins):
        if data.draw(st.booleans()):
            return None
        if ins.args[0] == Reg("r", 15):  # the wrapper loop's count: keep runs short
            return data.draw(st.integers(1, 3))
        return data.draw(_VALUES)

    progs = [prog, _with_imms(prog, redraw), _with_imms(prog, redraw)]
    for p in progs:
        assume(_interp_ok(p))
        assume(Interpreter(p, max_steps=STEPS).run().status != "step-limit")
    tmp = tmp_path_factory.mktemp("t0")
    for p in progs:
        ref = Interpreter(p).run()
        _exact(_tier0(p, tmp, precise_replay=precise), ref)
    assert not list(tmp.glob("jit-*.o"))  # tier-0 objects are never stored
    # sharing is decided by the shape digest, without building the text: equal digests, equal texts
    first = C._shape_digest(prog, _variant())
    for p in progs[1:]:
        if C._shape_digest(p, _variant()) == first:
            assert _tier0_text(p) == _tier0_text(prog)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(progs=st.lists(programs(), min_size=2, max_size=3))
def test_unrelated_programs_made_one_shape_still_run_their_own_code(tmp_path_factory, monkeypatch, progs):
    """The shape key is only a hint: with every program given one key, distinct random programs run one
    after another must each still run exactly (a later one takes an earlier object only if the tier-0
    texts are the same)."""
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_shape_key", lambda program, v: 0)
    for p in progs:
        assume(_interp_ok(p))
        assume(Interpreter(p, max_steps=STEPS).run().status != "step-limit")
    tmp = tmp_path_factory.mktemp("t0")
    for p in progs:
        _exact(_tier0(p, tmp), Interpreter(p).run())


# =================================================================== immediates in every role
# r1: outer trips, r2: byte offset of the loads, r3: an accumulator, r6: a divisor,
# r7: an f32 bit pattern, r8: inner trips; every immediate is one tier 0 may lift
SHAPE = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.data A i8[256] {data}
.zero B i8[256]
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, {trips}
    DMOV r2, {start}
    DMOV r3, {acc}
    DMOV.f32 r7, {fbits}
    DMOV r6, {div}
outer:
    DMOV r8, {inner}
    DADD r3, r3, {step}
inner:
    SGATHER.i32 r4, [p0 + r2]
    DADD r2, r2, {stride}
    DADD r3, r3, r4
    DSUB r9, r3, {sub}         | SSCATTR.i64 [p1 + r8], r3
    DLOOP r8, inner
    DDIV r10, r3, r6
    DADD.f32 r7, r7, r7
    DSUB r2, r2, {back}
    DLOOP r1, outer
    SGATHER.i64 r11, [p1 + {tail}]
    DHALT
"""

_DATA = ", ".join(str((7 * i + 3) % 251 - 120) for i in range(256))


@st.composite
def shapes(draw, tail: int = 8, stride: int = 8, sub: int = 1):
    """The immediates of one ``SHAPE`` program: ``tail`` (an address) and the innermost loop's ``stride``
    and ``sub`` stay in the code, so programs of one shape share them."""
    return dict(
        data=_DATA,
        trips=draw(st.integers(1, 6)),
        inner=draw(st.integers(1, 5)),
        start=draw(st.one_of(st.integers(0, 200), st.integers(-80, 300))),
        acc=draw(st.one_of(st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1))),
        step=draw(st.one_of(st.integers(-9, 9), st.integers(-(2**63), 2**63 - 1))),
        stride=stride,
        sub=sub,
        back=draw(st.integers(-30, 30)),
        div=draw(st.sampled_from([1, -1, 3, 7, 0])),
        fbits=draw(st.sampled_from([0x3F800000, 0xBFC00000, 0x7F7FFFFF, 0x00000001, 0x7FC00000])),
        tail=tail,
    )


def _shaped_text_is_shared(progs) -> None:
    """The programs of ``SHAPE`` differ in lifted immediates only: the premise of the tests below."""
    texts = {_tier0_text(p) for p in progs}
    assert len(texts) == 1
    # a later compile decides to share by the shape digest, without building its text: equal here too
    assert len({C._shape_digest(p, _variant()) for p in progs}) == 1


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    tail=st.sampled_from([0, 8, 248, 252]),
    stride=st.one_of(st.integers(0, 16), st.integers(-40, 70)),
    sub=st.integers(-(2**63), 2**63 - 1),
    precise=st.booleans(),
)
def test_one_shape_in_every_role_runs_exactly_back_to_back(
    tmp_path_factory, monkeypatch, data, tail, stride, sub, precise
):
    """Immediates as loop counts, load offsets, strides, divisors (a division by zero faults), f32
    bits, i64 wrap-around, with out-of-bounds loads faulting at the interpreter's pc: three programs of
    one shape compiled once, each exact."""
    ss = data.draw(st.lists(shapes(tail, stride, sub), min_size=3, max_size=3))
    texts: list[str] = []
    real = C._compile_object
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_compile_object", lambda *a: texts.append(a[0]) or real(*a))
    progs = [assemble(SHAPE.format(**s)) for s in ss]
    assume(len({tuple(p.code) for p in progs}) == len(progs))  # distinct (else the memory cache answers)
    tmp = tmp_path_factory.mktemp("t0")
    for p in progs:
        _exact(_tier0(p, tmp, precise_replay=precise), Interpreter(p).run())
    _shaped_text_is_shared(progs)
    # one compile of the fast variant, one of the precise variant a native replay of a fault uses
    assert len(texts) == len(set(texts)) <= 2 and all("vtpu_imms" in t for t in texts)


def test_the_shape_premise_holds():
    """SHAPE's variants that differ outside the innermost loop have one tier-0 text (else the tests
    above would not exercise any sharing)."""
    a = dict(data=_DATA, trips=3, inner=2, start=0, acc=1, step=2, stride=4, sub=5, back=6, div=7)
    b = dict(a, trips=5, inner=4, start=9, acc=-1, step=-2, back=-6, div=0)
    progs = [assemble(SHAPE.format(fbits=0x3F800000, tail=8, **a))]
    progs.append(assemble(SHAPE.format(fbits=0x3F800000, tail=8, **b)))
    _shaped_text_is_shared(progs)
    # an immediate of the innermost loop stays in the code: another text, another shape digest
    other = assemble(SHAPE.format(fbits=0x3F800000, tail=8, **dict(a, stride=12)))
    assert _tier0_text(other) != _tier0_text(progs[0])
    assert C._shape_digest(other, _variant()) != C._shape_digest(progs[0], _variant())


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(ss=st.lists(shapes(tail=252), min_size=2, max_size=2))
def test_step_limits_stop_each_program_of_one_shape_where_the_interpreter_stops(tmp_path_factory, ss):
    """The precise variant (a step limit) on tier 0: the limit lands on the same SIW with the same
    registers for every program of the shape."""
    tmp = tmp_path_factory.mktemp("t0")
    for s in ss:
        p = assemble(SHAPE.format(**s))
        for steps in (7, 23):
            ref = Interpreter(p, max_steps=steps).run()
            _exact(_tier0(p, tmp, max_steps=steps), ref)


@pytest.mark.parametrize("sentrons", [2, 3])
def test_several_sentrons_of_one_shape(tmp_path, compiles, sentrons):
    """Several sentrons (no single-sentron ring): the programs still share and still run exactly."""
    src = """
    DMOV r1, sid
    DMOV r2, {trips}
    DMOV r3, {k}
loop:
    DADD r4, r4, {k}
    DADD r3, r3, r1
    CREDUCE.add.i64 r5, r3, 0
    DLOOP r2, loop
    CBAR 0
    CCAST r6, r5, 0, 0
"""
    progs = [assemble(src.format(trips=t, k=k)) for t, k in ((3, 5), (7, -11), (1, 2**62))]
    for p in progs:
        ref = Interpreter(p, sentrons).run()
        res = _tier0(p, tmp_path, sentrons)
        assert res.engine == "jit" and res.tier == 0
        assert same_result(ref, res) == [] and res.siws == ref.siws


# =================================================================== analyses that read lifted immediates
# A fast loop's bounds proof (compile._bounded_offsets) reads the DMOV and DADD immediates tier 0 lifts:
# with ``skew`` 0 the load below provably stays inside A (its bounds check is left out of the loop's fast
# clone), with ``skew`` 64 it reads past A's end on the fourth trip. Both programs have one shape (same
# code but for lifted immediates), yet their tier-0 texts differ in the proof's constants: taking the
# first one's object for the second would read out of bounds instead of faulting.
STREAM = """
.coord A = 1.1.1/1.1.1/1.1.1
.coord B = 1.1.1/1.1.1/1.1.2
.data A i8[256] {data}
.zero B i8[64]
    SCOORD p0, A
    SCOORD p1, B
    DMOV r1, {trips}
    DMOV r2, {start}
    DMOV r5, {mask}
loop:
    DADD r2, r2, {add}
    DAND r2, r2, r5
    DADD r3, r2, {skew}
    SGATHER.i8 v1, [p0 + r3]
    DADD.i8 v2, v2, v1
    DLOOP r1, loop
    DNOP | SSCATTR.i8 [p1 + 0], v2
    DHALT
"""
_SDATA = ", ".join(str((5 * i + 1) % 256 - 128) for i in range(256))


def _stream(**kw) -> Program:
    return assemble(STREAM.format(**{"data": _SDATA, "trips": 8, "start": 0, "mask": 255, "add": 64, **kw}))


def test_a_program_whose_bounds_proof_differs_never_takes_the_others_object(tmp_path, compiles, monkeypatch):
    """Every program made one shape (the shape key is only a hint): the IR text alone decides."""
    monkeypatch.setattr(C, "_shape_key", lambda program, v: 0)
    safe, unsafe = _stream(skew=0, trips=11), _stream(skew=64, trips=11)
    assert _tier0_text(safe) != _tier0_text(unsafe)  # the premise: the proof's constants differ
    for p in (safe, unsafe):
        ref = Interpreter(p).run()
        _exact(_tier0(p, tmp_path), ref)
    assert ref.status == "fault" and ref.fault.siw == 8  # the out-of-bounds load of the second
    assert len(compiles) == 2


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ks=st.lists(
        st.fixed_dictionaries(
            dict(
                trips=st.integers(1, 9),
                start=st.sampled_from([0, 64, 1, 200]),
                mask=st.sampled_from([255, 127, 191, 511, 2**40]),
                add=st.sampled_from([64, 128, 192, 1, 65, 0, 2**20, 2**20 + 64]),
                skew=st.sampled_from([0, 8, 64, 128, 192, 1, -64]),
            )
        ),
        min_size=2,
        max_size=4,
    )
)
def test_fast_loops_of_one_shape_run_exactly_back_to_back(tmp_path_factory, monkeypatch, ks):
    """Streams, each with its own proof (or none), one after another, their shape keys made equal (the
    key is only a hint): each exact."""
    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_shape_key", lambda program, v: 0)
    tmp = tmp_path_factory.mktemp("t0")
    for kw in ks:
        p = _stream(**kw)
        _exact(_tier0(p, tmp), Interpreter(p).run())


def test_split_programs_of_one_shape_share_and_run_exactly(tmp_path, compiles, monkeypatch):
    """A program lowered as regions (one tier-0 module, its regions reading one table)."""
    monkeypatch.setattr(C, "SPLIT_SIWS", 8)
    monkeypatch.setattr(C, "REGION_SIWS", 6)
    monkeypatch.setattr(C, "COLD_MIN_SIWS", 2)
    src = ["DMOV r1, {trips}", "DMOV r2, {a}", "loop:", "DMOV r10, 2", "inner:", "DADD r11, r11, 1"]
    src += ["DLOOP r10, inner"]  # the outer loop is not innermost: its immediates are lifted
    src += [f"DADD r{3 + k % 4}, r{3 + k % 4}, {{d{k}}}" for k in range(14)]
    src += ["DSUB r2, r2, {a}", "DMOV r8, {b}", "DLOOP r1, loop", "DMUL r9, r3, r8", "DHALT"]
    text = "\n".join(src) + "\n"
    progs = []
    for salt in (3, -7, 2**40):
        vals = {f"d{k}": salt * (k + 1) for k in range(14)}
        progs.append(assemble(text.format(trips=abs(salt) % 5 + 1, a=salt, b=-salt, **vals)))
    assert len(C._regions(progs[0], C._leaders(progs[0]), C._Variant("none", False, 64, "", ""))) > 1
    for p in progs:
        _exact(_tier0(p, tmp_path), Interpreter(p).run())
    assert len(compiles) == 1


# =================================================================== compiles of one shape at once
def _run_all_at_once(progs, tmp, timeout: float = 120.0):
    """Run every program's tier-0 engine in its own thread, started together; their results in order."""
    go = threading.Barrier(len(progs))
    out: list = [None] * len(progs)

    def work(i: int) -> None:
        go.wait()
        try:
            out[i] = _tier0(progs[i], tmp)
        except BaseException as e:  # noqa: BLE001 - checked by the caller
            out[i] = e

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(progs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
        assert not th.is_alive(), "a tier-0 compile of a shared shape never finished (a lost wake-up?)"
    return out


def _slow_compiles(monkeypatch, delay: float, fail_first: bool = False) -> list[str]:
    """``_compile_object`` made slow (and the first one failing): compiles of one shape then overlap,
    and the later ones wait for the first."""
    import time

    real = C._compile_object
    texts: list[str] = []
    lock = threading.Lock()

    def slow(text, v, opt):
        with lock:
            texts.append(text)
            first = len(texts) == 1
        time.sleep(delay)
        if fail_first and first:
            raise C.JitError("injected failure of the first compile")
        return real(text, v, opt)

    monkeypatch.setattr(C, "_TIER0_JOBS", {})
    monkeypatch.setattr(C, "_compile_object", slow)
    return texts


def _family(n: int, salt: int) -> list[Program]:
    """``n`` programs of one shape that no other test compiles (loaded code stays: ``compile._loaded``)."""
    base = dict(data=_DATA, inner=3, acc=salt, stride=8, sub=1, back=20, div=3, fbits=0x3F800000, tail=8)
    return [assemble(SHAPE.format(**base, trips=2 + k, step=k - 2, start=4 * k)) for k in range(n)]


def test_compiles_of_one_shape_started_together_wait_and_share(tmp_path, monkeypatch):
    texts = _slow_compiles(monkeypatch, 0.3)
    progs = _family(4, 1001)
    _shaped_text_is_shared(progs)
    for p, res in zip(progs, _run_all_at_once(progs, tmp_path), strict=True):
        assert not isinstance(res, BaseException), res
        _exact(res, Interpreter(p).run())
    assert len(texts) == 1  # one compile; the others waited for it and took its object
    assert gc.isenabled()


def test_when_the_shared_compile_fails_the_waiting_ones_compile_their_own(tmp_path, monkeypatch):
    texts = _slow_compiles(monkeypatch, 0.3, fail_first=True)
    progs = _family(3, 1002)
    out = _run_all_at_once(progs, tmp_path)
    ok = [(p, r) for p, r in zip(progs, out, strict=True) if not isinstance(r, BaseException)]
    failed = [r for r in out if isinstance(r, BaseException)]
    assert len(failed) <= 1  # only the compile that failed may fail its engine
    assert len(ok) >= len(progs) - 1
    for p, res in ok:
        _exact(res, Interpreter(p).run())
    assert len(texts) >= 2
    assert gc.isenabled()


def test_a_failed_tier0_build_in_one_thread_leaves_the_collector_on(monkeypatch):
    """Builds overlapping in two threads, one raising: the collector is on again after both (whether a
    build pauses it is the builder's choice)."""
    C._init()
    cpu, feat = C.host_target()
    v = C._Variant("none", False, 64, cpu, feat)
    prog = _family(1, 1003)[0]
    real = C._build_parts
    inside = threading.Event()
    release = threading.Event()

    def build(program, v, parts, only, imm_values=None):
        if program is prog:
            inside.set()
            release.wait(30)
            raise RuntimeError("injected")
        return real(program, v, parts, only, imm_values)

    monkeypatch.setattr(C, "_build_parts", build)
    errors: list = []
    th = threading.Thread(target=lambda: _catch(errors, C.build_tier0, prog, v))
    assert gc.isenabled()
    th.start()
    assert inside.wait(30)
    other = _family(2, 1004)[1]
    text, vals = C.build_tier0(other, v)  # a whole build while the other one is still inside its own
    assert "vtpu_imms" in text and vals
    release.set()
    th.join(30)
    assert [type(e) for e in errors] == [RuntimeError]
    assert gc.isenabled()


def _catch(errors, fn, *a) -> None:
    try:
        fn(*a)
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


# =================================================================== tiers and the disk cache
def test_tier1_after_shared_tier0_code_is_exact_and_keyed_by_its_own_immediates(tmp_path, compiles):
    """Tier 0 of two programs of one shape (one object, never stored), then tier 1 of each with the disk
    cache: each its own object, exact."""
    progs = _family(2, 1005)
    for p in progs:
        _exact(_tier0(p, tmp_path), Interpreter(p).run())
    assert len(compiles) == 1 and not list(tmp_path.glob("jit-*.o"))
    for p in progs:
        res = jit.JitEngine(p, cache_dir=tmp_path, tiered=False).run()
        assert res.engine == "jit" and res.tier == 1
        assert same_result(Interpreter(p).run(), res) == []
    assert len(list(tmp_path.glob("jit-*.o"))) == 2
    assert all("vtpu_imms" not in t for t in compiles[1:])  # tier 1 keeps its immediates in the code
