"""JIT lowering of every svISA op to LLVM IR (llvmlite): one hook per op name, next to ``semantics.py``.

Each op name registers one lowering hook with :func:`lower` (the twin of ``semantics.sem``). A hook
receives the :class:`Lowerer` (builder, register access, faults, callbacks) and the decoded
instruction, and emits IR into the current basic block. Registers live in allocas that mem2reg turns
into SSA values; control flow is real control flow (see ``jit.py`` for the module driver).

Bit-exactness rules mirrored from the golden model (``semantics.py``): no fast-math; f32 FMA is
``llvm.fma``; every f32 result that is NaN becomes 0x7FC00000 wherever the interpreter canonicalises;
shift counts are clamped (LLVM shifts by >= width are poison); integer division checks for zero and
MIN / -1; f32 -> int conversions guard out-of-range values (``fptosi`` would be poison).

Ops whose semantics need the Python runtime (scroll allocation, tiers, SDEDUP, SINDEX.carry and the
blocking C-pipe ops) are lowered to a callback into ``jit.py``, which runs the interpreter's own
semantics hook on the sentron's state, so the two engines cannot drift apart on them.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from vtpu_cli.binary.program import MEM_CONTIG, MEM_STRIDED, Imm, Instr, Reg
from vtpu_cli.core.numerics import CANON_NAN32, sext
from vtpu_cli.engines.jit import comm as jit_comm
from vtpu_cli.engines.jit import irbase
from vtpu_cli.engines.jit.irbase import (  # noqa: F401  (re-exported for the lowering hooks)
    CTX_SIZE,
    ELEM,
    F32,
    F64,
    GOLDEN64,
    I1,
    I8,
    I16,
    I32,
    I64,
    I128,
    INTW,
    OFF_ABORT_PTR,
    OFF_BLOCKED,
    OFF_COUNTED,
    OFF_COUNTS_PTR,
    OFF_CSTAT,
    OFF_FASTHITS,
    OFF_FLAGS,
    OFF_FLEET,
    OFF_HOME,
    OFF_M,
    OFF_MAXSTEPS,
    OFF_MLEN,
    OFF_P,
    OFF_PC,
    OFF_PPT,
    OFF_PPTHITS,
    OFF_PPTMISSES,
    OFF_R,
    OFF_RACE,
    OFF_READYCB,
    OFF_SCOUNT,
    OFF_SEEN,
    OFF_SID,
    OFF_SLOT,
    OFF_SLOWCB,
    OFF_STATUS,
    OFF_STEPS_PTR,
    OFF_TAB,
    OFF_TABMASK,
    OFF_TGEN,
    OFF_TRPTR,
    OFF_TRSET,
    OFF_TRSIZE,
    OFF_TSC0,
    OFF_TSC1,
    OFF_V,
    OFF_YIELD,
    PTR,
    ST_ABORT,
    ST_DEADLOCK,
    ST_ERROR,
    ST_FAULT,
    ST_LIMIT,
    ST_OK,
    ST_PYFAULT,
    ST_REPLAY,
    TAB_DEAD,
    TAB_EMPTY,
    TAB_MOVING,
    VB,
    Unsupported,
    _fminmax,
    _FnPtr,
    _vt,
    const,
    ity,
    ivty,
    splat,
    table_slot,
    vty,
    weigh,
)
from vtpu_cli.isa.families import BINARY, COMPARE
from vtpu_cli.isa.table import FLAG_CMP, HOME_COORD, VEC_BYTES, lanes, type_size
from vtpu_cli.machine.memory import ppt_set

LOWER: dict[str, Callable] = {}
PSLOW_TYPE = ir.FunctionType(ir.IntType(64), [PTR] + [ir.IntType(64)] * 4 + [PTR])  # vtpu_ppt_slow
PSEQ_TYPE = ir.FunctionType(ir.IntType(64), [PTR] + [ir.IntType(64)] * 3 + [PTR] * 4)  # vtpu_ppt_seq
RT_FNS = ("vtpu_ppt_slow", "vtpu_ppt_seq")  # the tier-0 runtime table's entries (Lowerer.rt_table)

# id(Instr) -> (the Instr, its ``regs()``): the analyses of one module build ask for an instruction's
# registers about four times (20,000 calls on a model step); emptied by the build (``forget_regs``).
# Keyed by id with the Instr kept, so an id reused by another object never matches.
_REGS: dict[int, tuple] = {}


def regs_of(ins) -> tuple[set, set]:
    """``ins.regs()`` -- (read, written) register keys --, computed once per instruction and build."""
    got = _REGS.get(id(ins))
    if got is not None and got[0] is ins:
        return got[1]
    rw = ins.regs()
    _REGS[id(ins)] = (ins, rw)
    return rw


def forget_regs() -> None:
    _REGS.clear()


def lower(*names: str):
    def deco(fn):
        for n in names:
            LOWER[n] = fn
        return fn

    return deco


# =================================================================== the lowerer
class Lowerer:
    """Per-function lowering state: builder, register allocas, fault exits and callbacks."""

    def __init__(
        self,
        fn: ir.Function,
        module: ir.Module,
        ctx,
        *,
        portable: bool,
        features: set[str],
        ppt_sets: int,
        ppt_ways: int = 4,
        precise: bool = True,
    ):
        self.fn, self.module, self.ctx = fn, module, ctx
        self.portable = portable
        self.features = features
        self.ppt_sets, self.ppt_ways = ppt_sets, ppt_ways
        # precise: every exit writes the registers back (faults are then reported from that state);
        # fast: a fault exit only records (pc, slot) and the engine replays the run (see jit.py)
        self.precise = precise
        self.fault_block: ir.Block = None  # type: ignore[assignment]  # fast mode: the shared fault exit
        self.fault_phi = None
        self._ppt_fn = None
        self._pslow_fn = None
        # large programs: the p registers' MRU flags as one i64 mask, the slow translation out of line
        # (see make_allocas); set by the driver before make_allocas
        self.mru_mask = False
        self.pending: set[int] = set()  # v registers holding a not yet canonicalised f32 result
        # v registers that may stay raw across block boundaries (fast mode: the destinations of raw
        # f32 producers; set by the driver); every other register is canonical at block boundaries
        self.raw_regs: set[int] = set()
        # where raw f32 results may cross SIW boundaries (a whole-program dataflow, see NanPlan; set by
        # the driver for a whole program in fast mode); None: only ``raw_regs`` cross blocks raw
        self.nan_plan: NanPlan | None = None
        self.b: ir.IRBuilder = None  # type: ignore[assignment]
        # tier 0: (the module's ``IMMS`` table, (pc, slot) -> its entry) -- ``DMOV r, imm`` reads its
        # immediate from there (see compile._imm_slots); None: immediates are constants in the code
        self.imms: tuple[ir.GlobalVariable, dict[tuple[int, int], int]] | None = None
        self.pc = 0
        self.slot = 0
        self.exit_block: ir.Block = None  # type: ignore[assignment]
        self.branch = None  # (cond or None, target) set by branch hooks
        self.halt = False
        self._intr: dict[str, ir.Function] = {}
        # inside a fast loop clone every p register the loop accesses is known to be its set's MRU entry
        self.known_mru = False
        # ... and (race detector) every read/write record it needs is current: no checks at all
        self.known_race = False
        # p registers statically known (at the current emission point of a basic block) to be their
        # set's MRU entry: translated earlier in the block with no p write, callback or other
        # register's slow translation since. Their accesses need no flag test and no slow path.
        self.static_mru: set[int] = set()
        # p registers holding a coordinate known at compile time (SCOORD with a constant), and what each
        # block starts with (compile._const_coords); two such registers in different PPT sets (or with
        # the same coordinate) never clear each other's MRU flag
        self.pconst: dict[int, int] = {}
        self.block_consts: dict[int, dict[int, int]] = {}
        self.race = False  # several sentrons with S accesses: set by comm.setup
        self.edits = False  # several sentrons and SALLOC/SFREE/SFLUSH: set by comm.setup
        self._slot_fn: ir.Function | None = None
        self._find_fn: ir.Function | None = None
        self._scrub_fn: ir.Function | None = None
        # tier 0 (fast variant, one sentron): ``segment_plan(pc, slot)`` -> the p registers of the S
        # accesses lowered from (pc, slot) on, in order, up to anything that could change a translation
        # (set by the driver, compile._segment_plan). translate() then checks them once per *segment*
        # (``_segment``) instead of once per access; ``seg``/``seg_pos``: the segment being lowered
        self.segment_plan: Callable[[int, int], tuple[int, ...]] | None = None
        self.seg: tuple[int, ...] | None = None
        self.seg_pos = 0
        # tier 0: the module's table of the out-of-line PPT helpers (``RT_FNS``), filled at load with
        # the process's one compiled copy (compile._runtime): the helpers are not in every module
        self.rt_table: ir.GlobalVariable | None = None
        # (pc, slot) of the S accesses whose bounds a fast loop clone's dispatch proved for every trip
        # (compile._bounded_offsets): their bounds check is not emitted in the clone
        self.unchecked: set[tuple[int, int]] = set()
        # ... and the indexed 16 x 32-bit gathers whose lanes it proved inside the permute window
        # (compile._bounded_indexes): only the permute path is emitted
        self.window_proven: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ ctx access
    def cptr(self, off: int):
        return self.b.gep(self.ctx, [const(I64, off)], inbounds=True, source_etype=I8)

    def cload(self, off: int, ty):
        return self.b.load(self.cptr(off), typ=ty, align=1)

    def cstore(self, val, off: int):
        self.b.store(val, self.cptr(off), align=1)

    def make_allocas(self, entry_b: ir.IRBuilder, nblocks: int, keep=None) -> None:
        """The register file and per-function counters; ``keep``: the blocks whose counters this
        function holds (a region of a split program), default all ``nblocks``."""
        a = entry_b.alloca
        self.R = [a(I64, name=f"r{i}") for i in range(16)]
        self.P = [a(I128, name=f"p{i}") for i in range(8)]
        self.V = [a(VB, name=f"v{i}") for i in range(32)]
        self.M = [a(VB, name=f"m{i}") for i in range(4)]
        self.ML = [a(I64, name=f"ml{i}") for i in range(4)]
        self.FL = a(I64, name="flags")
        # per p register: "valid" (its coordinate is the MRU entry of its PPT set, so an access is a
        # hit that changes no LRU state) and the translation it then has (pointer, size, set).
        # ``mru_mask`` (large programs): the flags are the bits of one i64 and the sets and coordinates
        # the registers were translated with live in memory (TSTATE: set, lo, hi per register), read
        # only by the out-of-line slow path (``emit_ppt_slow``). A slow translation updates every
        # register's flag: inline, that is ~8 IR lines and an i1 phi per register at every join, about
        # a sixth of a model step's IR; a register whose bit is set still holds the coordinate it was
        # translated with (every p write clears its bit), so the slow path needs no register values.
        if self.mru_mask:
            self.MRU = a(I64, name="mru")
            self.TSTATE = a(ir.ArrayType(I64, 24), name="tstate")
            entry_b.store(ir.Constant(self.TSTATE.allocated_type, None), self.TSTATE)  # never undef
        else:
            self.MRU = [a(I1, name=f"mru{i}") for i in range(8)]
            self.TSET = [a(I64, name=f"tset{i}") for i in range(8)]
        # tier 0: the tables' addresses, once (a global inside an address makes the fast instruction
        # selector give the rest of the block to SelectionDAG)
        if self.imms is not None:
            self.IMMP = entry_b.inttoptr(entry_b.ptrtoint(self.imms[0], I64), PTR)
        if self.rt_table is not None:
            self.RTP = entry_b.inttoptr(entry_b.ptrtoint(self.rt_table, I64), PTR)
        if self.segment_plan is not None:  # what _segment hands the out-of-line helper (vtpu_ppt_seq)
            eight = ir.Constant(I64, 8)
            self.SEGC = a(I128, size=eight, name="segc")
            self.SEGP = a(PTR, size=eight, name="segp")
            self.SEGS = a(I64, size=eight, name="segs")
        self.TPTR = [a(PTR, name=f"tptr{i}") for i in range(8)]
        self.TSIZE = [a(I64, name=f"tsize{i}") for i in range(8)]
        # several sentrons: the scroll-table slot of the translation (the race detector's scroll index)
        self.TIDX = [a(I64, name=f"tidx{i}") for i in range(8)]
        # ... and whether this sentron's read / write of that scroll is already recorded at its current
        # epoch (the race detector's check can then be skipped; cleared at every epoch change)
        self.RREC = [a(I1, name=f"rrec{i}") for i in range(8)]
        self.WREC = [a(I1, name=f"wrec{i}") for i in range(8)]
        # PPT accesses through a p register and how many of them took the slow path; fast hits are
        # the difference (an unconditional add per access folds into one add per block; a fast-path-only
        # increment would stay one add per access)
        self.FASTHITS = a(I64, name="fasthits")
        self.TRSLOW = a(I64, name="trslow")
        self.STEPS = a(I64, name="steps")
        self.COUNTS = [a(I64, name=f"cnt{i}") if keep is None or i in keep else None for i in range(nblocks)]

    def set_usage(self, used: set, written: set) -> None:
        """Registers the program touches: only those are loaded, and only written ones are spilled."""
        self.used = used
        self.written = written
        self.used_p = sorted(i for c, i in used if c == "p")

    def _regs(self, which: set):
        for cls, i in sorted(which):
            if cls == "r":
                yield self.R[i], OFF_R + 8 * i
            elif cls == "p":
                yield self.P[i], OFF_P + 16 * i
            elif cls == "v":
                yield self.V[i], OFF_V + 64 * i
            elif cls == "m":
                yield self.M[i], OFF_M + 64 * i
                yield self.ML[i], OFF_MLEN + 8 * i

    def load_state(self) -> None:
        """ctx -> allocas (at entry and after a callback); only registers the program uses."""
        b = self.b
        for slot, off in self._regs(self.used):
            b.store(self.cload(off, slot.allocated_type), slot)
        self.forget_translations()
        self.forget_races()
        b.store(self.cload(OFF_FLAGS, I64), self.FL)

    def forget_translations(self) -> None:
        """Every p register is translated again at its next access (after a callback, or a PPT refresh
        that may have dropped or moved what its flag vouches for)."""
        b = self.b
        if self.mru_mask:
            b.store(ir.Constant(I64, 0), self.MRU)
        else:
            for i in self.used_p:
                b.store(ir.Constant(I1, 0), self.MRU[i])
        self.static_mru.clear()
        self.seg = None

    def forget_races(self) -> None:
        """The race detector's access records are stale (epoch change, new registers)."""
        for i in self.used_p:
            self.b.store(ir.Constant(I1, 0), self.RREC[i])
            self.b.store(ir.Constant(I1, 0), self.WREC[i])

    def spill_state(self) -> None:
        """allocas -> ctx (before a callback and at exit); registers never written are still in ctx."""
        self.flush_all()
        b = self.b
        for slot, off in self._regs(self.written):
            self.cstore(b.load(slot), off)
        self.cstore(b.load(self.FL), OFF_FLAGS)

    # ------------------------------------------------------------------ registers
    def rget(self, i: int):
        return self.b.load(self.R[i])

    def rset(self, i: int, v) -> None:
        self.b.store(v, self.R[i])

    # Deferred NaN canonicalisation (fast mode): an f32 result may stay "pending" (its NaN lanes not yet
    # 0x7FC00000) while only f32 arithmetic reads it -- whether an f32 op's result is NaN does not
    # depend on its inputs' NaN payloads, and every such result is canonicalised in turn. Anything that
    # observes the bits (stores, integer ops, moves, conversions to bf16 -- which keep the NaN's
    # sign --, callbacks, the end of the basic block) canonicalises first (``_flush``).
    def _flush(self, i: int) -> None:
        if i in self.pending:
            self.pending.discard(i)
            b = self.b
            b.store(b.bitcast(self.canon(b.bitcast(b.load(self.V[i]), vty("f32"))), VB), self.V[i])

    def flush_all(self) -> None:
        for i in sorted(self.pending):
            self._flush(i)

    def block_start(self) -> None:
        """At a basic block's start, a register of ``raw_regs`` (with a ``nan_plan``: of the plan's
        ``raw[pc]``; the function's common end block: ``raw[n]``) may hold a raw f32 result."""
        plan = self.nan_plan
        if plan is None:
            self.pending = set(self.raw_regs)
        else:  # the common end block is entered with lw.pc still at the last SIW lowered
            self.pending = set(plan.raw_at(plan.n if self.b.block.name == "end" else self.pc))
        self.static_mru.clear()
        self.seg = None
        self.pconst = dict(self.block_consts.get(self.pc, {}))

    def block_end(self) -> None:
        """Before a block's terminator: only registers of ``raw_regs`` may stay raw across the edge; with
        a ``nan_plan``, those that no successor may receive with bits to keep (``NanPlan.keep``)."""
        plan = self.nan_plan
        if plan is None:
            keep = self.raw_regs
        else:
            succ: list[int] = []
            if self.branch is not None:
                cond, t = self.branch
                succ.append(t)
                if cond is not None:
                    succ.append(self.pc + 1)
            elif not self.halt:
                succ.append(self.pc + 1)
            keep = plan.keep(succ)
        for i in sorted(self.pending - keep):
            self._flush(i)

    def vraw(self, i: int):
        self._flush(i)
        return self.b.load(self.V[i])

    def vget(self, i: int, t: str, raw_ok: bool = False):
        """Vector register as lanes of t; ``raw_ok``: an f32 reader that ignores NaN payloads."""
        if not (raw_ok and t == "f32"):
            self._flush(i)
        return self.b.bitcast(self.b.load(self.V[i]), vty(t))

    def vgeti(self, i: int, t: str):
        """Vector register as integer lanes of t's width (bf16/f32 as raw bits)."""
        self._flush(i)
        return self.b.bitcast(self.b.load(self.V[i]), ivty(t))

    def vset(self, i: int, val) -> None:
        self.pending.discard(i)
        self.b.store(self.b.bitcast(val, VB), self.V[i])

    def vset_f32(self, i: int, val) -> None:
        """An f32 arithmetic result (not yet canonicalised) -> v[i]; canonicalised now or deferred."""
        if self.precise:
            self.vset(i, self.canon(val))
            return
        self.b.store(self.b.bitcast(val, VB), self.V[i])
        self.pending.add(i)

    def pget(self, i: int):
        return self.b.load(self.P[i])

    def pset(self, i: int, v, const: int | None = None) -> None:
        """p[i] = v; ``const``: v's value when known at compile time (a constant SCOORD)."""
        self.b.store(v, self.P[i])
        self.static_mru.discard(i)
        self.seg = None
        if const is None:
            self.pconst.pop(i, None)
        else:
            self.pconst[i] = const
        self.clear_mru(i)
        self.b.store(ir.Constant(I1, 0), self.RREC[i])
        self.b.store(ir.Constant(I1, 0), self.WREC[i])

    def clear_mru(self, i: int) -> None:
        b = self.b
        if self.mru_mask:
            b.store(b.and_(b.load(self.MRU), ir.Constant(I64, ~(1 << i))), self.MRU)
        else:
            b.store(ir.Constant(I1, 0), self.MRU[i])

    def mru_all(self, regs) -> ir.Value:
        """i1: every p register of ``regs`` is its PPT set's MRU entry."""
        b = self.b
        if not self.mru_mask:
            ok = ir.Constant(I1, 1)
            for i in regs:
                ok = b.and_(ok, b.load(self.MRU[i]))
            return ok
        bits = ir.Constant(I64, sum(1 << i for i in regs))
        return b.icmp_unsigned("==", b.and_(b.load(self.MRU), bits), bits)

    def sid(self):
        return self.cload(OFF_SID, I64)

    def scount(self):
        return self.cload(OFF_SCOUNT, I64)

    def home(self):
        return self.cload(OFF_HOME, I128)

    def lifted_imm(self):
        """Tier 0: the immediate of the instruction at (pc, slot) as an i64 read from the module's IMMS
        table, when it is one the driver lifted there (compile._imm_slots); else None."""
        k = None if self.imms is None else self.imms[1].get((self.pc, self.slot))
        if k is None:
            return None
        b = self.b
        return b.load(b.gep(self.IMMP, [ir.Constant(I64, k)], source_etype=I64), typ=I64)

    # ------------------------------------------------------------------ typed scalar views
    def s_in(self, arg, t: str):
        """A scalar operand (register or immediate) as one element of type t (f32 as float)."""
        raw = ir.Constant(I64, arg.value) if isinstance(arg, Imm) else self.rget(arg.idx)
        x = self.b.trunc(raw, ity(t)) if t != "i64" else raw
        return self.b.bitcast(x, F32) if t == "f32" else x

    def s_out(self, x, t: str):
        """One element of type t -> canonical scalar register value (ints sign-extend, floats zero-extend)."""
        b = self.b
        if t == "f32":
            return b.zext(b.bitcast(self.canon(x), I32), I64)
        if t == "bf16":
            return b.zext(x, I64)
        return b.sext(x, I64) if t != "i64" else x

    def v_in(self, arg, t: str, raw_ok: bool = False):
        """A vector source: register lanes of type t, or an immediate broadcast (bits for floats)."""
        if isinstance(arg, Imm):
            return imm_vec(self, arg.value, t)
        return self.vget(arg.idx, t, raw_ok)

    # ------------------------------------------------------------------ numerics helpers
    def intrinsic(self, name: str, ret, args) -> ir.Function:
        key = name
        f = self._intr.get(key)
        if f is None:
            f = self.module.globals.get(name)
            if f is None:
                f = ir.Function(self.module, ir.FunctionType(ret, args), name=name)
            self._intr[key] = f
        return f

    def call(self, name: str, ret, args: list):
        return self.b.call(self.intrinsic(name, ret, [a.type for a in args]), args)

    def canon(self, x):
        """Replace NaN by the canonical quiet NaN 0x7FC00000 (scalar float or float vector).

        Done on the integer bits: LLVM treats NaN payloads of float results as unspecified, so a float
        ``select(isnan(x), qnan, x)`` may legally be folded to ``x``.
        """
        b = self.b
        it = ir.VectorType(I32, x.type.count) if isinstance(x.type, ir.VectorType) else I32
        bits = b.bitcast(x, it)
        if self._avx512_cmp(x):
            # one vcmpunordps + one masked move. Not an IR ``fcmp uno``: InstCombine would see that the
            # select picks a NaN exactly when x is NaN and fold it to x (payloads are unspecified).
            kt = ir.VectorType(I1, 16)
            isnan = self.call(
                "llvm.x86.avx512.mask.cmp.ps.512",
                kt,
                [x, x, ir.Constant(I32, 3), ir.Constant(kt, [1] * 16), ir.Constant(I32, 4)],
            )
        else:
            isnan = b.icmp_unsigned(
                ">", b.and_(bits, _const_like(bits, 0x7FFFFFFF)), _const_like(bits, 0x7F800000)
            )
        return b.bitcast(b.select(isnan, _const_like(bits, CANON_NAN32), bits), x.type)

    def _avx512_cmp(self, x) -> bool:
        return (
            not self.portable
            and "avx512f" in self.features
            and isinstance(x.type, ir.VectorType)
            and x.type.count == 16
        )

    def any_true(self, m):
        if isinstance(m.type, ir.VectorType):
            return self.call(f"llvm.vector.reduce.or.v{m.type.count}i1", I1, [m])
        return m

    # ------------------------------------------------------------------ faults and exits
    def new_block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def exit_with(self, status: int, pc: int | None = None, counted: int = 1) -> None:
        """Terminate the current block: record status/pc/slot and jump to the common exit."""
        self.flush_all()
        self.cstore(ir.Constant(I64, status), OFF_STATUS)
        self.cstore(ir.Constant(I64, self.pc if pc is None else pc), OFF_PC)
        self.cstore(ir.Constant(I64, self.slot), OFF_SLOT)
        self.cstore(ir.Constant(I64, counted), OFF_COUNTED)
        self.b.branch(self.exit_block)

    def fault_if(self, cond, status: int = ST_FAULT) -> None:
        """Exit with a fault (the Python side re-runs the golden hook to produce the exact message).

        Fast mode: an unlikely edge to the shared fault block, which records (status, pc, slot) from a
        phi and writes no registers back (the engine replays the run to report the fault)."""
        ok = self.new_block(f"ok_{self.pc}_{self.slot}")
        if not self.precise:
            if isinstance(cond, ir.Constant) and cond.constant == 0:
                self.b.branch(ok)
            else:
                br = self.b.cbranch(cond, self.get_fault_block(), ok)
                weigh(br, [1, 1 << 20])
                code = status | (self.slot << 8) | (self.pc << 16)
                self.fault_phi.add_incoming(ir.Constant(I64, code), self.b.block)
            self.b.position_at_end(ok)
            return
        bad = self.new_block(f"fault_{self.pc}_{self.slot}")
        br = self.b.cbranch(cond, bad, ok)
        weigh(br, [1, 1 << 20])
        self.b.position_at_end(bad)
        self.exit_with(status)
        self.b.position_at_end(ok)

    def get_fault_block(self) -> ir.Block:
        """Fast mode: the shared fault exit block (created on first use), whose phi is the exit code."""
        if self.fault_block is None:
            self.fault_block = self.new_block("fault")
            self.fault_phi = irbase.builder(self.fault_block).phi(I64, name="fault_code")
        return self.fault_block

    def fault_now(self) -> None:
        self.fault_if(ir.Constant(I1, 1))

    # ------------------------------------------------------------------ callbacks into Python
    def _cb(self, off: int, extra: list):
        """Call a runtime callback whose address sits at ctx[off]: i64 cb(ctx, extra...)."""
        fty = ir.FunctionType(I64, [PTR] + [a.type for a in extra])
        return self.b.call(_FnPtr(self.cload(off, PTR), fty), [self.ctx, *extra])

    def slow_call(self, ready: bool = False) -> None:
        """Spill, call the Python runtime for (pc, slot), reload; exit on a non-zero status."""
        self.spill_state()
        if ready:
            st = self._cb(OFF_READYCB, [ir.Constant(I64, self.pc)])
        else:
            st = self._cb(OFF_SLOWCB, [ir.Constant(I64, self.pc), ir.Constant(I64, self.slot)])
        bad = self.new_block(f"cbfail_{self.pc}_{self.slot}")
        ok = self.new_block(f"cbok_{self.pc}_{self.slot}")
        self.b.cbranch(self.b.icmp_unsigned("!=", st, ir.Constant(I64, 0)), bad, ok)
        self.b.position_at_end(bad)
        # the callback wrote status/pc/slot itself
        self.cstore(ir.Constant(I64, 1), OFF_COUNTED)
        self.b.branch(self.exit_block)
        self.b.position_at_end(ok)
        self.load_state()
        # spill_state canonicalised every pending register; the callback wrote its results exactly
        self.pending = set(self.raw_regs) if self.nan_plan is None else set()

    # ------------------------------------------------------------------ the PPT translation
    def translate(self, pidx: int):
        """(ptr, size) of the scroll at p[pidx]; counts the PPT access exactly like Memory.translate.

        Fast path: the coordinate is known (in SSA) to be the MRU entry of its set, so the access is a
        hit that changes nothing but the hit counter. Otherwise the native LRU simulation
        (``vtpu_ppt_translate``) runs; afterwards this coordinate is its set's MRU and every other p
        register in the same set (with a different coordinate) no longer is.
        """
        b = self.b
        if self.segment_plan is not None and not self.known_mru:
            seg = self.seg
            if seg is None or self.seg_pos >= len(seg) or seg[self.seg_pos] != pidx:
                # a new segment (a mismatch happens only in code after an unconditional fault)
                self.seg = None
                seg = self.segment_plan(self.pc, self.slot)
                if seg and seg[0] == pidx:
                    self._segment(seg)
                    self.seg, self.seg_pos = seg, 0
            if self.seg is not None:
                # _segment translated (and counted) this access already: take its translation
                self.seg_pos += 1
                return b.load(self.TPTR[pidx]), b.load(self.TSIZE[pidx])
        if self.known_mru or pidx in self.static_mru:
            # a fast loop clone (compile._fast_loops), or translated earlier in this block: a hit
            # that changes nothing
            b.store(b.add(b.load(self.FASTHITS), ir.Constant(I64, 1)), self.FASTHITS)
            return b.load(self.TPTR[pidx]), b.load(self.TSIZE[pidx])
        tag = f"{self.pc}_{self.slot}"
        mru = self.mru_all([pidx])
        slow = self.new_block(f"trslow_{tag}")
        done = self.new_block(f"trdone_{tag}")
        fast = self.new_block(f"trfast_{tag}")
        b.store(b.add(b.load(self.FASTHITS), ir.Constant(I64, 1)), self.FASTHITS)
        br = b.cbranch(mru, fast, slow)
        weigh(br, [1 << 20, 1])
        b.position_at_end(fast)
        b.branch(done)
        b.position_at_end(slow)
        b.store(b.add(b.load(self.TRSLOW), ir.Constant(I64, 1)), self.TRSLOW)
        coord = self.pget(pidx)
        lo = b.trunc(coord, I64)
        hi = b.trunc(b.lshr(coord, ir.Constant(I128, 64)), I64)
        if self.mru_mask:
            args = [self.ctx, lo, hi, ir.Constant(I64, pidx), b.load(self.MRU), self.TSTATE]
            mask = b.call(self.pslow_fn(), args)
            self.fault_if(b.icmp_signed("<", mask, ir.Constant(I64, 0)))
            b.store(mask, self.MRU)
        else:
            self._slow_flags(pidx, coord, lo, hi)
        b.store(self.cload(OFF_TRPTR, PTR), self.TPTR[pidx])
        b.store(self.cload(OFF_TRSIZE, I64), self.TSIZE[pidx])
        if self.race:
            # the same coordinate keeps its slot while several sentrons run, so the access records stay
            # valid; a new coordinate cleared them in pset
            slot = b.call(self.slot_fn(), [self.ctx, lo, hi])
            if self.edits:  # freed since the translation by a racing sentron: the golden model reports
                self.fault_if(b.icmp_signed("<", slot, ir.Constant(I64, 0)), ST_REPLAY)
            b.store(slot, self.TIDX[pidx])
        b.branch(done)
        b.position_at_end(done)
        self._static_after_slow(pidx)
        return b.load(self.TPTR[pidx]), b.load(self.TSIZE[pidx])

    def _segment(self, seq: tuple[int, ...]) -> None:
        """The PPT work of the accesses ``seq`` (p registers, in order, with no p write, callback or
        block boundary between them) done once, before the first: if every register in it is its set's
        MRU entry, each access is a hit that changes nothing; otherwise ``vtpu_ppt_seq`` runs the
        per-access rule over the whole sequence (a slow translation where the bit is clear, which may
        clear other bits), so LRU state, counters and translations end as the accesses one by one
        would leave them. A coordinate with no scroll gives its register size 0, so the access faults
        at its own bounds check (every access form checks against the size), at its own (pc, slot),
        and the fast variant's run is replayed, which reports the fault."""
        b = self.b
        regs = sorted(set(seq))
        if self.static_mru.issuperset(regs):  # known MRU here (an earlier segment of this block): no test
            b.store(b.add(b.load(self.FASTHITS), ir.Constant(I64, len(seq))), self.FASTHITS)
            return
        tag = f"{self.pc}_{self.slot}"
        slow = self.new_block(f"segslow_{tag}")
        done = self.new_block(f"segdone_{tag}")
        weigh(b.cbranch(self.mru_all(regs), done, slow), [1 << 20, 1])
        b.position_at_end(slow)
        for i in regs:
            k = ir.Constant(I64, i)
            b.store(
                self.pget(i),
                b.gep(self.SEGC, [k], source_etype=I128),
            )
            b.store(
                b.load(self.TPTR[i]),
                b.gep(self.SEGP, [k], source_etype=PTR),
            )
            b.store(
                b.load(self.TSIZE[i]),
                b.gep(self.SEGS, [k], source_etype=I64),
            )
        packed = sum(r << (4 * k) for k, r in enumerate(seq))
        args = [self.ctx, ir.Constant(I64, packed), ir.Constant(I64, len(seq)), b.load(self.MRU), self.TSTATE]
        got = b.call(self.pseq_fn(), [*args, self.SEGC, self.SEGP, self.SEGS])
        b.store(b.and_(got, ir.Constant(I64, 0xFF)), self.MRU)
        b.store(b.add(b.load(self.TRSLOW), b.lshr(got, ir.Constant(I64, 8))), self.TRSLOW)
        for i in regs:
            k = ir.Constant(I64, i)
            b.store(
                b.load(b.gep(self.SEGP, [k], source_etype=PTR), typ=PTR),
                self.TPTR[i],
            )
            b.store(
                b.load(b.gep(self.SEGS, [k], source_etype=I64), typ=I64),
                self.TSIZE[i],
            )
        b.branch(done)
        b.position_at_end(done)
        # every access of the segment, counted at once (a run that faults before the segment's end is
        # replayed: its counters are not read)
        b.store(b.add(b.load(self.FASTHITS), ir.Constant(I64, len(seq))), self.FASTHITS)
        # the helper's slow translations may have cleared any register's bit, but the last one accessed
        # is its set's MRU entry now (a hit leaves it so, a slow translation makes it so)
        self.static_mru = {seq[-1]}

    def _rt_fn(self, name: str, fty: ir.FunctionType):
        """A runtime helper through the module's table, loaded here (a value of this function)."""
        b = self.b
        k = ir.Constant(I64, RT_FNS.index(name))
        return _FnPtr(b.load(b.gep(self.RTP, [k], source_etype=PTR), typ=PTR), fty)

    def pseq_fn(self):
        """``vtpu_ppt_seq``: segments exist only in tier-0 code, which calls it through the runtime table."""
        return self._rt_fn("vtpu_ppt_seq", PSEQ_TYPE)

    def _slow_flags(self, pidx: int, coord, lo, hi) -> None:
        """The slow translation with per-register flags, inline: ``vtpu_ppt_translate``, then this
        register is MRU and every other one in the same set with another coordinate is not."""
        b = self.b
        st = b.call(self.ppt_fn(), [self.ctx, lo, hi])
        self.fault_if(b.icmp_unsigned("!=", st, ir.Constant(I64, 0)))
        myset = self.cload(OFF_TRSET, I64)
        b.store(myset, self.TSET[pidx])
        for k in self.used_p:
            if k == pidx:
                continue
            keep = b.or_(
                b.icmp_unsigned("!=", b.load(self.TSET[k]), myset), b.icmp_unsigned("==", self.pget(k), coord)
            )
            b.store(b.and_(b.load(self.MRU[k]), keep), self.MRU[k])
        b.store(ir.Constant(I1, 1), self.MRU[pidx])

    def _static_after_slow(self, pidx: int) -> None:
        # the slow path cleared the flag of every other register in this one's PPT set with another
        # coordinate; registers with known coordinates in other sets (or the same coordinate) keep theirs
        c = self.pconst.get(pidx)
        keep = set()
        if c is not None:
            mine = ppt_set(c, self.ppt_sets)
            for k in self.static_mru:
                ck = self.pconst.get(k)
                if ck is not None and (ck == c or ppt_set(ck, self.ppt_sets) != mine):
                    keep.add(k)
        self.static_mru = keep | {pidx}

    def ppt_fn(self) -> ir.Function:
        if self._ppt_fn is None:
            self._ppt_fn = emit_ppt_translate(self.module, self.ppt_sets, self.ppt_ways, shared=self.edits)
        return self._ppt_fn

    def pslow_fn(self) -> ir.Function:
        if self.rt_table is not None:
            return self._rt_fn("vtpu_ppt_slow", PSLOW_TYPE)
        if self._pslow_fn is None:
            self._pslow_fn = emit_ppt_slow(self.module, self.ppt_fn())
        return self._pslow_fn

    def slot_fn(self) -> ir.Function:
        if self._slot_fn is None:
            self._slot_fn = emit_scroll_slot(self.module, shared=self.edits)
        return self._slot_fn

    def find_fn(self) -> ir.Function:
        if self._find_fn is None:
            self._find_fn = emit_scroll_slot(self.module, live_only=True, shared=True)
        return self._find_fn

    def scrub_fn(self) -> ir.Function:
        if self._scrub_fn is None:
            self._scrub_fn = emit_ppt_scrub(self.module, self.ppt_sets, self.ppt_ways, self.find_fn())
        return self._scrub_fn


def emit_ppt_scrub(module: ir.Module, sets: int, ways: int, find: ir.Function) -> ir.Function:
    """``void vtpu_ppt_scrub(ctx, gen)``: bring this sentron's PPT block up to the scroll table after
    other sentrons edited it (several sentrons; ``comm.refresh``): each set keeps, in LRU order, the
    entries whose coordinate is still live, with the pointer and size the table has now (as
    ``Memory._invalidate`` drops a freed one); then ``tgen`` = ``gen``, the generation read before the
    scrub (an edit during it leaves the sentron behind, so its next acquire scrubs again). Lock-free:
    the table is read as ``vtpu_scroll_find`` reads it, the size before the pointer (acquire)."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), name="vtpu_ppt_scrub")
    fn.linkage = "internal"
    for a in ("noinline", "nounwind", "cold"):
        fn.attributes.add(a)
    ctx, gen = fn.args
    c64 = lambda x: ir.Constant(I64, x)  # noqa: E731
    entry = fn.append_basic_block("entry")
    b = irbase.builder(entry)

    def cp(off):
        return b.gep(ctx, [c64(off)], inbounds=True, source_etype=I8)

    def u64p(base, idx):
        return b.gep(base, [idx], source_etype=I64)

    ppt = b.load(cp(OFF_PPT), typ=PTR, align=1)
    tab = b.load(cp(OFF_TAB), typ=PTR, align=1)
    shead = fn.append_basic_block("set")
    sbody = fn.append_basic_block("set_body")
    ehead = fn.append_basic_block("way")
    ebody = fn.append_basic_block("way_body")
    keep = fn.append_basic_block("keep")
    enext = fn.append_basic_block("way_next")
    snext = fn.append_basic_block("set_next")
    done = fn.append_basic_block("done")
    b.branch(shead)
    b.position_at_end(shead)
    si = b.phi(I64)
    si.add_incoming(c64(0), entry)
    b.cbranch(b.icmp_unsigned("<", si, c64(sets)), sbody, done)
    b.position_at_end(sbody)
    n = b.load(u64p(ppt, si), typ=I64)
    base = b.add(c64(sets), b.mul(si, c64(ways * 4)))
    b.branch(ehead)
    b.position_at_end(ehead)
    i = b.phi(I64)  # entry read
    w = b.phi(I64)  # entries kept so far
    i.add_incoming(c64(0), sbody)
    w.add_incoming(c64(0), sbody)
    b.cbranch(b.icmp_unsigned("<", i, n), ebody, snext)
    b.position_at_end(ebody)
    src = b.add(base, b.mul(i, c64(4)))
    lo = b.load(u64p(ppt, src), typ=I64)
    hi = b.load(u64p(ppt, b.add(src, c64(1))), typ=I64)
    h = b.call(find, [ctx, lo, hi])
    b.cbranch(b.icmp_signed(">=", h, c64(0)), keep, enext)
    b.position_at_end(keep)
    size = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(3))), "acquire", 8, typ=I64)
    ptr = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(2))), "acquire", 8, typ=I64)
    dst = b.add(base, b.mul(w, c64(4)))
    for k, v in enumerate((lo, hi, ptr, size)):
        b.store(v, u64p(ppt, b.add(dst, c64(k))))
    live = b.icmp_unsigned("<", size, c64(TAB_DEAD))  # freed between the find and the size: dropped
    w1 = b.add(w, b.zext(live, I64))
    b.branch(enext)
    b.position_at_end(enext)
    kept = b.phi(I64)
    kept.add_incoming(w, ebody)
    kept.add_incoming(w1, keep)
    i.add_incoming(b.add(i, c64(1)), enext)
    w.add_incoming(kept, enext)
    b.branch(ehead)
    b.position_at_end(snext)
    b.store(w, u64p(ppt, si))
    si.add_incoming(b.add(si, c64(1)), snext)
    b.branch(shead)
    b.position_at_end(done)
    b.store(gen, cp(OFF_TGEN), align=1)
    b.ret_void()
    return fn


def emit_ppt_slow(module: ir.Module, translate: ir.Function) -> ir.Function:
    """``i64 vtpu_ppt_slow(ctx, lo, hi, i, mask, state)``: p register ``i``'s slow translation out of line
    (``Lowerer.mru_mask``): ``vtpu_ppt_translate``, then the new MRU mask, or -1 when no scroll has the
    coordinate. Register ``i`` becomes its set's MRU entry; every other register whose bit is set keeps
    it only when it lies in another PPT set or has the same coordinate (``state``: per register the set,
    lo and hi it was translated with; ``i``'s entry is written here). Bits that are clear stay clear
    whatever ``state`` holds for them."""
    fn = ir.Function(module, ir.FunctionType(I64, [PTR, I64, I64, I64, I64, PTR]), name="vtpu_ppt_slow")
    fn.linkage = "internal"
    for attr in ("noinline", "nounwind", "cold"):
        fn.attributes.add(attr)
    ctx, lo, hi, i, mask, state = fn.args
    b = irbase.builder(fn.append_basic_block("entry"))
    ok = fn.append_basic_block("found")
    bad = fn.append_basic_block("absent")

    def c64(x: int):
        return ir.Constant(I64, x)

    def field(k, f: int):
        idx = c64(3 * k + f) if isinstance(k, int) else b.add(b.mul(k, c64(3)), c64(f))
        return b.gep(state, [idx], source_etype=I64)

    st = b.call(translate, [ctx, lo, hi])
    b.cbranch(b.icmp_unsigned("!=", st, c64(0)), bad, ok)
    b.position_at_end(bad)
    b.ret(c64(-1))
    b.position_at_end(ok)
    myset = b.load(b.gep(ctx, [c64(OFF_TRSET)], inbounds=True, source_etype=I8), typ=I64, align=1)
    out = b.shl(c64(1), i)
    for k in range(8):
        same = b.and_(
            b.icmp_unsigned("==", b.load(field(k, 1), typ=I64), lo),
            b.icmp_unsigned("==", b.load(field(k, 2), typ=I64), hi),
        )
        keep = b.or_(b.icmp_unsigned("!=", b.load(field(k, 0), typ=I64), myset), same)
        out = b.or_(out, b.select(keep, b.and_(mask, c64(1 << k)), c64(0)))
    for f, val in enumerate((myset, lo, hi)):
        b.store(val, field(i, f))
    b.ret(out)
    return fn


SEQ_MAX = 16  # accesses one vtpu_ppt_seq call covers (4 bits each in an i64)


def emit_ppt_seq(module: ir.Module, pslow: ir.Function) -> ir.Function:
    """``i64 vtpu_ppt_seq(ctx, packed, n, mask, state, coords, tptr, tsize)``: the PPT rule of ``n``
    accesses through p registers ``(packed >> 4k) & 15`` (k = 0 .. n-1), one by one: a register whose
    ``mask`` bit is set is a hit that changes nothing; otherwise ``vtpu_ppt_slow`` translates
    ``coords[i]`` (the register's value) and gives the new mask, and ``tptr[i]``/``tsize[i]`` take the
    translation. Returns ``mask | slow translations << 8``. A coordinate with no scroll stops the
    sequence there with ``tsize[i]`` = 0: that access fails its bounds check, as one by one it would
    fail its translation, at its own (pc, slot)."""
    fn = ir.Function(
        module, ir.FunctionType(I64, [PTR, I64, I64, I64, PTR, PTR, PTR, PTR]), name="vtpu_ppt_seq"
    )
    fn.linkage = "internal"
    for attr in ("noinline", "nounwind", "cold"):
        fn.attributes.add(attr)
    ctx, packed, n, mask, state, coords, tptr, tsize = fn.args
    entry, loop, miss, got, nxt, out, bad = (
        fn.append_basic_block(x) for x in ("entry", "loop", "miss", "got", "next", "out", "absent")
    )

    def c64(x: int):
        return ir.Constant(I64, x)

    b = irbase.builder(entry)
    b.branch(loop)
    b.position_at_end(loop)
    k = b.phi(I64)
    m = b.phi(I64)
    cnt = b.phi(I64)
    i = b.and_(b.lshr(packed, b.shl(k, c64(2))), c64(15))
    hit = b.icmp_unsigned("!=", b.and_(b.lshr(m, i), c64(1)), c64(0))
    b.cbranch(hit, nxt, miss)
    b.position_at_end(miss)
    coord = b.load(b.gep(coords, [i], source_etype=I128), typ=I128)
    lo = b.trunc(coord, I64)
    hi = b.trunc(b.lshr(coord, ir.Constant(I128, 64)), I64)
    m1 = b.call(pslow, [ctx, lo, hi, i, m, state])
    b.cbranch(b.icmp_signed("<", m1, c64(0)), bad, got)
    b.position_at_end(got)
    trptr = b.load(b.gep(ctx, [c64(OFF_TRPTR)], inbounds=True, source_etype=I8), typ=PTR, align=1)
    b.store(trptr, b.gep(tptr, [i], source_etype=PTR))
    trsize = b.load(b.gep(ctx, [c64(OFF_TRSIZE)], inbounds=True, source_etype=I8), typ=I64, align=1)
    b.store(trsize, b.gep(tsize, [i], source_etype=I64))
    cnt1 = b.add(cnt, c64(1))
    b.branch(nxt)
    b.position_at_end(nxt)
    m2 = b.phi(I64)
    m2.add_incoming(m, loop)
    m2.add_incoming(m1, got)
    cnt2 = b.phi(I64)
    cnt2.add_incoming(cnt, loop)
    cnt2.add_incoming(cnt1, got)
    k1 = b.add(k, c64(1))
    b.cbranch(b.icmp_unsigned("<", k1, n), loop, out)
    for phi, first, again in ((k, c64(0), k1), (m, mask, m2), (cnt, c64(0), cnt2)):
        phi.add_incoming(first, entry)
        phi.add_incoming(again, nxt)
    b.position_at_end(out)
    b.ret(b.or_(m2, b.shl(cnt2, c64(8))))
    # no scroll at the coordinate: the access faults at its own bounds check (size 0), where the
    # accesses one by one fault; the ones after it never run
    b.position_at_end(bad)
    b.store(ir.Constant(PTR, None), b.gep(tptr, [i], source_etype=PTR))
    b.store(c64(0), b.gep(tsize, [i], source_etype=I64))
    b.ret(b.or_(m, b.shl(cnt, c64(8))))
    return fn


def emit_scroll_slot(module: ir.Module, live_only: bool = False, shared: bool = False) -> ir.Function:
    """``i64 vtpu_scroll_slot(ctx, lo, hi)``: the scroll table slot of an existing coordinate (the race
    detector's per-scroll index: while several sentrons run, a coordinate keeps its slot).
    ``live_only`` (``vtpu_scroll_find``): any coordinate; -1 when it has no entry or a freed one.
    ``shared``: the host edits the table meanwhile (``emit_ppt_translate``): the entry's words are read
    as the translation reads them, and a coordinate that has no entry any more gives -1."""
    name = "vtpu_scroll_find" if live_only else "vtpu_scroll_slot"
    fn = ir.Function(module, ir.FunctionType(I64, [PTR, I64, I64]), name=name)
    fn.linkage = "internal"
    for a in ("noinline", "nounwind", "cold"):
        fn.attributes.add(a)
    ctx, lo, hi = fn.args
    b = irbase.builder(fn.append_basic_block("entry"))
    c64 = lambda x: ir.Constant(I64, x)  # noqa: E731

    def cp(off):
        return b.gep(ctx, [c64(off)], inbounds=True, source_etype=I8)

    tab = b.load(cp(OFF_TAB), typ=PTR, align=1)
    mask = b.load(cp(OFF_TABMASK), typ=I64, align=1)
    h0 = b.and_(b.lshr(b.mul(b.xor(lo, b.shl(hi, c64(32))), c64(GOLDEN64 - (1 << 64))), c64(40)), mask)
    entry = b.block
    probe = fn.append_basic_block("probe")
    nxt = fn.append_basic_block("next")
    found = fn.append_basic_block("found")
    b.branch(probe)
    b.position_at_end(probe)
    h = b.phi(I64)
    h.add_incoming(h0, entry)
    if shared:  # hi first (acquire): the host publishes a new entry by writing its hi word last
        thi = b.load_atomic(
            b.gep(tab, [b.add(b.mul(h, c64(4)), c64(1))], source_etype=I64), "acquire", 8, typ=I64
        )
        tlo = b.load(b.gep(tab, [b.mul(h, c64(4))], source_etype=I64), typ=I64)
    else:
        tlo = b.load(b.gep(tab, [b.mul(h, c64(4))], source_etype=I64), typ=I64)
        thi = b.load(b.gep(tab, [b.add(b.mul(h, c64(4)), c64(1))], source_etype=I64), typ=I64)
    b.cbranch(b.and_(b.icmp_unsigned("==", thi, hi), b.icmp_unsigned("==", tlo, lo)), found, nxt)
    b.position_at_end(nxt)
    h.add_incoming(b.and_(b.add(h, c64(1)), mask), nxt)
    if shared:  # an absent coordinate ends at an empty slot (-1), never loops
        absent = fn.append_basic_block("absent")
        b.cbranch(b.icmp_unsigned("==", thi, c64(TAB_EMPTY)), absent, probe)
        b.position_at_end(absent)
        b.ret(c64(-1))
    else:
        b.branch(probe)
    b.position_at_end(found)
    if shared:  # the size, then the hi and lo words again: a slot changing hands is probed again
        size = b.load_atomic(
            b.gep(tab, [b.add(b.mul(h, c64(4)), c64(3))], source_etype=I64), "acquire", 8, typ=I64
        )
        again = b.load_atomic(
            b.gep(tab, [b.add(b.mul(h, c64(4)), c64(1))], source_etype=I64), "acquire", 8, typ=I64
        )
        lo2 = b.load_atomic(b.gep(tab, [b.mul(h, c64(4))], source_etype=I64), "acquire", 8, typ=I64)
        same = fn.append_basic_block("same")
        h.add_incoming(h, found)
        b.cbranch(b.and_(b.icmp_unsigned("==", again, hi), b.icmp_unsigned("==", lo2, lo)), same, probe)
        b.position_at_end(same)
        dead = b.icmp_unsigned(">=", size, c64(TAB_DEAD))
        b.ret(b.select(dead, c64(-1), h) if live_only else h)
    else:
        b.ret(h)
    return fn


def _spread_global(module: ir.Module):
    """coords._SPREAD as an LLVM constant table: bit b of a 10-bit field -> bit 9*b."""
    from vtpu_cli.core.coords import _SPREAD

    ty = ir.ArrayType(I128, len(_SPREAD))
    g = ir.GlobalVariable(module, ty, name="vtpu_spread")
    g.initializer = ir.Constant(ty, [ir.Constant(I128, x) for x in _SPREAD])
    g.global_constant = True
    g.linkage = "internal"
    return g


def emit_ppt_translate(module: ir.Module, sets: int, ways: int, shared: bool = False) -> ir.Function:
    """``i64 vtpu_ppt_translate(ctx, lo, hi)``: Memory.translate natively (same set hash, LRU, counters).

    Writes the scroll's pointer, size and PPT set to ctx[OFF_TRPTR/OFF_TRSIZE/OFF_TRSET]; returns 0, or
    1 when no scroll has the coordinate (a miss is counted first, like the interpreter does).
    ``shared``: the host edits the scroll table while this sentron runs (several sentrons, a program
    that edits it): an entry's hi word is read first and its size before its pointer, both with acquire
    ordering (the host writes them last), and a freed entry (size TAB_DEAD) is absent.
    """
    fn = ir.Function(module, ir.FunctionType(I64, [PTR, I64, I64]), name="vtpu_ppt_translate")
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    fn.attributes.add("cold")
    ctx, lo, hi = fn.args
    spread = _spread_global(module)
    b = irbase.builder(fn.append_basic_block("entry"))
    c64 = lambda x: ir.Constant(I64, x)  # noqa: E731

    def cp(off):
        return b.gep(ctx, [c64(off)], inbounds=True, source_etype=I8)

    def u64p(base, idx):
        return b.gep(base, [idx], source_etype=I64)

    coord = b.or_(b.shl(b.zext(hi, I128), ir.Constant(I128, 64)), b.zext(lo, I128))
    key = ir.Constant(I128, 0)
    for i in range(9):
        f = b.trunc(b.and_(b.lshr(coord, ir.Constant(I128, 10 * (8 - i))), ir.Constant(I128, 1023)), I64)
        sp = b.load(b.gep(spread, [c64(0), f], inbounds=True, source_etype=spread.value_type), typ=I128)
        key = b.or_(key, b.shl(sp, ir.Constant(I128, 8 - i)))
    k64 = b.xor(b.trunc(key, I64), b.trunc(b.lshr(key, ir.Constant(I128, 64)), I64))
    bits = sets.bit_length() - 1
    setv = b.lshr(b.mul(k64, c64(GOLDEN64 - (1 << 64))), c64(64 - bits)) if sets > 1 else c64(0)
    b.store(setv, cp(OFF_TRSET), align=1)
    ppt = b.load(cp(OFF_PPT), typ=PTR, align=1)
    cntp = u64p(ppt, setv)
    n = b.load(cntp, typ=I64)
    base = b.add(c64(sets), b.mul(setv, c64(ways * 4)))  # u64 index of the set's first entry

    def ent(i, field):
        return u64p(ppt, b.add(base, b.add(b.mul(i, c64(4)), c64(field))))

    # search the ways (LRU first)
    search = fn.append_basic_block("search")
    body = fn.append_basic_block("body")
    hit = fn.append_basic_block("hit")
    miss = fn.append_basic_block("miss")
    place = fn.append_basic_block("place")
    entry_blk = b.block
    b.branch(search)
    b.position_at_end(search)
    i = b.phi(I64)
    i.add_incoming(c64(0), entry_blk)
    b.cbranch(b.icmp_unsigned("<", i, n), body, miss)
    b.position_at_end(body)
    same = b.and_(
        b.icmp_unsigned("==", b.load(ent(i, 0), typ=I64), lo),
        b.icmp_unsigned("==", b.load(ent(i, 1), typ=I64), hi),
    )
    nxt = b.add(i, c64(1))
    i.add_incoming(nxt, body)
    b.cbranch(same, hit, search)
    # hit: counted; moves to the MRU end
    b.position_at_end(hit)
    hp = cp(OFF_PPTHITS)
    b.store(b.add(b.load(hp, typ=I64, align=1), c64(1)), hp, align=1)
    hptr = b.load(ent(i, 2), typ=I64)
    hsize = b.load(ent(i, 3), typ=I64)
    hlast = b.sub(n, c64(1))
    b.branch(place)
    # miss: counted; look the scroll table up
    b.position_at_end(miss)
    mp = cp(OFF_PPTMISSES)
    b.store(b.add(b.load(mp, typ=I64, align=1), c64(1)), mp, align=1)
    tab = b.load(cp(OFF_TAB), typ=PTR, align=1)
    mask = b.load(cp(OFF_TABMASK), typ=I64, align=1)
    h0 = b.and_(b.lshr(b.mul(b.xor(lo, b.shl(hi, c64(32))), c64(GOLDEN64 - (1 << 64))), c64(40)), mask)
    probe = fn.append_basic_block("probe")
    pnext = fn.append_basic_block("probe_next")
    found = fn.append_basic_block("found")
    absent = fn.append_basic_block("absent")
    b.branch(probe)
    b.position_at_end(probe)
    h = b.phi(I64)
    h.add_incoming(h0, miss)
    if shared:
        thi = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(1))), "acquire", 8, typ=I64)
    else:
        thi = b.load(u64p(tab, b.add(b.mul(h, c64(4)), c64(1))), typ=I64)
    tlo = b.load(u64p(tab, b.mul(h, c64(4))), typ=I64)
    b.cbranch(b.and_(b.icmp_unsigned("==", thi, hi), b.icmp_unsigned("==", tlo, lo)), found, pnext)
    b.position_at_end(pnext)
    h.add_incoming(b.and_(b.add(h, c64(1)), mask), pnext)
    b.cbranch(b.icmp_unsigned("==", thi, c64(TAB_EMPTY)), absent, probe)
    b.position_at_end(absent)
    b.ret(c64(1))
    b.position_at_end(found)
    if shared:
        # the size before the pointer, then the hi and lo words again (all acquire): a slot the host
        # handed to another coordinate meanwhile (TAB_MOVING, then its words) is probed again
        fsize = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(3))), "acquire", 8, typ=I64)
        fptr = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(2))), "acquire", 8, typ=I64)
        again = b.load_atomic(u64p(tab, b.add(b.mul(h, c64(4)), c64(1))), "acquire", 8, typ=I64)
        lo2 = b.load_atomic(u64p(tab, b.mul(h, c64(4))), "acquire", 8, typ=I64)
        same = fn.append_basic_block("same")
        live = fn.append_basic_block("live")
        h.add_incoming(h, found)
        b.cbranch(b.and_(b.icmp_unsigned("==", again, hi), b.icmp_unsigned("==", lo2, lo)), same, probe)
        b.position_at_end(same)
        b.cbranch(b.icmp_unsigned(">=", fsize, c64(TAB_DEAD)), absent, live)
        b.position_at_end(live)
    else:
        fptr = b.load(u64p(tab, b.add(b.mul(h, c64(4)), c64(2))), typ=I64)
        fsize = b.load(u64p(tab, b.add(b.mul(h, c64(4)), c64(3))), typ=I64)
    full = b.icmp_unsigned(">=", n, c64(ways))
    mstart = b.select(full, c64(0), n)
    mlast = b.select(full, c64(ways - 1), n)
    b.store(b.select(full, c64(ways), b.add(n, c64(1))), cntp)
    found_end = b.block
    b.branch(place)
    # place: entries start+1..last move down one; the coordinate goes to `last` (the MRU end)
    b.position_at_end(place)
    start = b.phi(I64)
    start.add_incoming(i, hit)
    start.add_incoming(mstart, found_end)
    last = b.phi(I64)
    last.add_incoming(hlast, hit)
    last.add_incoming(mlast, found_end)
    sptr = b.phi(I64)
    sptr.add_incoming(hptr, hit)
    sptr.add_incoming(fptr, found_end)
    ssize = b.phi(I64)
    ssize.add_incoming(hsize, hit)
    ssize.add_incoming(fsize, found_end)
    mv = fn.append_basic_block("move")
    mvb = fn.append_basic_block("move_body")
    fin = fn.append_basic_block("fin")
    b.branch(mv)
    b.position_at_end(mv)
    j = b.phi(I64)
    j.add_incoming(start, place)
    b.cbranch(b.icmp_unsigned("<", j, last), mvb, fin)
    b.position_at_end(mvb)
    j1 = b.add(j, c64(1))
    for fld in range(4):
        b.store(b.load(ent(j1, fld), typ=I64), ent(j, fld))
    j.add_incoming(j1, mvb)
    b.branch(mv)
    b.position_at_end(fin)
    for fld, val in enumerate((lo, hi, sptr, ssize)):
        b.store(val, ent(last, fld))
    b.store(b.inttoptr(sptr, PTR), cp(OFF_TRPTR), align=1)
    b.store(ssize, cp(OFF_TRSIZE), align=1)
    b.ret(c64(0))
    return fn


def imm_vec(lw: Lowerer, value: int, t: str):
    """semantics.imm_lanes as IR: floats arrive as bit patterns (NaN payloads kept: built from i32 bits)."""
    n = lanes(t)
    if t == "f32":
        return lw.b.bitcast(splat(value & 0xFFFFFFFF, ir.VectorType(I32, n)), ir.VectorType(F32, n))
    if t == "bf16":
        return splat(value & 0xFFFF, ir.VectorType(I16, n))
    bits = type_size(t) * 8
    return splat(sext(value, bits), ir.VectorType(ity(t), n))


def _no_payload_nan(ins: Instr) -> bool:
    """A writer whose result has no f32 lane that is a NaN other than 0x7FC00000 (canonicalising it is
    harmless): a broadcast immediate (an accumulator's ``DBCAST.f32 v, 0.0``) or ``DXOR v, a, a``."""
    name, args = ins.op.name, ins.args
    if name == "DXOR" and isinstance(args[1], Reg) and args[1] == args[2]:
        return True
    if name != "DBCAST" or not isinstance(args[1], Imm):
        return False
    width = type_size(ins.type) * 8
    v = args[1].value & ((1 << width) - 1)
    pattern = 0
    for k in range(0, 64, width):
        pattern |= v << k
    for k in (0, 32):
        lane = (pattern >> k) & 0xFFFFFFFF
        if (lane & 0x7F800000) == 0x7F800000 and lane & 0x7FFFFF and lane != 0x7FC00000:
            return False
    return True


class NanPlan:
    """Where raw f32 results (``vset_f32``, fast mode) may cross SIW boundaries, for a whole program.

    A raw result may be canonicalised at any later point (canonicalisation is idempotent, and the f32
    arithmetic that reads it raw turns any NaN into a NaN whatever its payload); a value some other op
    wrote (a load, a move, an integer op) must keep its bits. So a register may stay raw across an edge
    unless the edge's target may also be reached with such a value in it: two forward may-analyses over
    the SIW graph, ``exact`` (an exact-bits write, or the entry, reaches the SIW's start: bit 1 << v)
    and then ``raw`` (a raw write reaches it without an exact one on any path, and no edge on the way
    canonicalised it). A loop-carried accumulator then keeps its NaN lanes raw across the back edge
    and is canonicalised only where something observes it (a store, a move, an exit ...), as long as
    every path into the loop head sets it with f32 arithmetic or a broadcast constant.

    ``entry_raw``: the registers the function's start treats as possibly raw (``raw_regs``: those that
    only raw producers and harmless constants write). The end (pc ``n``) is one more node: its block
    canonicalises ``raw[n]`` as it exits."""

    def __init__(self, code: list, entry_raw: set[int]):
        n = len(code)
        self.n = n
        allv = (1 << 32) - 1
        entry_mask = sum(1 << i for i in entry_raw)
        # per SIW: (registers it leaves exact, registers it leaves raw), slots in order
        writes: list[tuple[int, int]] = []
        self._succ: list[list[int]] = []
        for pc, siw in enumerate(code):
            ex = rw = written = 0
            for ins in siw:
                if ins.is_nop:
                    continue
                r = raw_f32_dest(ins)
                for cls, i in regs_of(ins)[1]:
                    if cls != "v":
                        continue
                    bit = 1 << i
                    written |= bit
                    if i == r:
                        ex, rw = ex & ~bit, rw | bit
                    elif _no_payload_nan(ins):
                        ex, rw = ex & ~bit, rw & ~bit
                    else:
                        ex, rw = ex | bit, rw & ~bit
            writes.append((ex, rw, written))
            self._succ.append(self._successors(code, pc))
        # exact[pc]: registers that may hold bits to keep at pc's start (pc n: the end block)
        exact = [0] * (n + 1)
        exact[0] = allv & ~entry_mask
        self._fix(exact, lambda pc, s: (s & ~writes[pc][2]) | writes[pc][0])
        self.exact = exact
        # raw[pc]: registers that may hold a raw result at pc's start (never one of exact[pc])
        raw = [0] * (n + 1)
        raw[0] = entry_mask

        def out(pc: int, s: int) -> int:
            ex, rw, written = writes[pc]
            s = (s & ~written) | rw
            for t in self._succ[pc]:  # flushed before the terminator: some successor may get exact bits
                s &= ~exact[t]
            return s

        self._fix(raw, out)
        self.raw = raw

    @staticmethod
    def _successors(code: list, pc: int) -> list[int]:
        n = len(code)
        d = code[pc][0]
        if not d.op.branch:
            return [min(pc + 1, n)]
        name = d.op.name
        if name == "DHALT":
            return []
        t = d.args[-1].value
        t = t if 0 <= t <= n else n
        return [t] if name == "DJMP" else sorted({t, min(pc + 1, n)})

    def _fix(self, state: list[int], out) -> None:
        """Forward may-analysis to a fixed point: state[s] |= out(pc, state[pc]) along every edge, in
        sweeps in program order (most edges go forward: a few sweeps, as many as loops nest)."""
        succ = self._succ
        changed = True
        while changed:
            changed = False
            for pc in range(self.n):
                o = out(pc, state[pc])
                for t in succ[pc]:
                    if o & ~state[t]:
                        state[t] |= o
                        changed = True

    def raw_at(self, pc: int) -> set[int]:
        """The v registers that may hold a raw f32 result at SIW pc's start."""
        s = self.raw[pc] & ~self.exact[pc]
        return {i for i in range(32) if s >> i & 1}

    def keep(self, succ: list[int]) -> set[int]:
        """The registers that may cross the edges to ``succ`` (pcs; >= n: the end) raw."""
        bad = 0
        for t in succ:
            bad |= self.exact[t if 0 <= t <= self.n else self.n]
        return {i for i in range(32) if not bad >> i & 1}


def raw_f32_dest(ins: Instr) -> int | None:
    """The v register an op writes with ``vset_f32`` (a possibly raw f32 result), else None."""
    if ins.op.defers_nan and ins.type == "f32" and ins.args and getattr(ins.args[0], "cls", "") == "v":
        return ins.args[0].idx
    return None


# =================================================================== D pipe: arithmetic
def _const_like(v, c: int):
    t = v.type
    if isinstance(t, ir.VectorType):
        return splat(c, t)
    return ir.Constant(t, c)


def _int_binop(lw: Lowerer, name: str, x, y, bits: int):
    """Integer lanes (scalar or vector of iN), by the op's row in ``isa/families.py``; the caller
    checks DDIV's zero divisor."""
    b = lw.b
    rule = BINARY[name]
    if rule.family in ("wrap", "bitwise"):
        return getattr(b, rule.ir_int)(x, y)
    if rule.family == "minmax":
        return b.select(b.icmp_signed(rule.ir_int, x, y), x, y)
    if rule.family == "shift":
        big = b.icmp_unsigned(">=", y, _const_like(y, bits))
        cnt = b.select(big, _const_like(y, bits - 1), y)
        r = getattr(b, rule.ir_int)(x, cnt)
        return r if name == "DSAR" else b.select(big, _const_like(x, 0), r)
    # div: MIN / -1 wraps to MIN (sdiv would be UB)
    m1 = b.icmp_signed("==", y, _const_like(y, -1))
    safe = b.select(m1, _const_like(y, 1), y)
    return b.select(m1, b.sub(_const_like(x, 0), x), b.sdiv(x, safe))


def _f32_binop(lw: Lowerer, name: str, x, y, canon: bool = True):
    rule = BINARY[name]
    if rule.family == "minmax":
        return _fminmax(lw, name, x, y)
    r = getattr(lw.b, rule.ir_f32)(x, y)
    return lw.canon(r) if canon else r


@lower(*BINARY)
def _binary(lw: Lowerer, ins: Instr):
    d, a, bb = ins.args
    t, name = ins.type, ins.op.name
    if d.cls == "v":
        x, y = lw.v_in(a, t, raw_ok=True), lw.v_in(bb, t, raw_ok=True)
    else:
        x, y = lw.s_in(a, t), lw.lifted_imm()  # tier 0: DADD/DSUB r, r, imm may read it from IMMS
        if y is None:
            y = lw.s_in(bb, t)
    if t == "f32" and d.cls == "v" and BINARY[name].family != "minmax":
        lw.vset_f32(d.idx, _f32_binop(lw, name, x, y, canon=False))
        return
    if t == "f32":
        r = _f32_binop(lw, name, x, y)
    else:
        if name == "DDIV":
            lw.fault_if(lw.any_true(lw.b.icmp_signed("==", y, _const_like(y, 0))))
        r = _int_binop(lw, name, x, y, type_size(t) * 8)
    if d.cls == "v":
        lw.vset(d.idx, r)
    else:
        lw.rset(d.idx, lw.s_out(r, t))


@lower("DFMA")
def _fma(lw: Lowerer, ins: Instr):
    d, a, bb, c = ins.args
    t = ins.type
    b = lw.b
    if d.cls == "v":
        x, y, z = lw.vget(a.idx, t, True), lw.vget(bb.idx, t, True), lw.v_in(c, t, True)
    else:
        x, y, z = lw.s_in(a, t), lw.s_in(bb, t), lw.s_in(c, t)
    if t == "f32" and d.cls == "v":
        lw.vset_f32(d.idx, lw.call(f"llvm.fma.v{x.type.count}f32", x.type, [x, y, z]))
        return
    if t == "f32":
        suffix = f"v{x.type.count}f32" if d.cls == "v" else "f32"
        r = lw.canon(lw.call(f"llvm.fma.{suffix}", x.type, [x, y, z]))
    else:
        r = b.add(b.mul(x, y), z)
    if d.cls == "v":
        lw.vset(d.idx, r)
    else:
        lw.rset(d.idx, lw.s_out(r, t))


@lower("DCMP")
def _cmp(lw: Lowerer, ins: Instr):
    d, a, bb = ins.args
    t, cc = ins.type, ins.mod
    b = lw.b
    if d.cls == "v":
        x, y = lw.vget(a.idx, t, True), lw.v_in(bb, t, True)
    else:
        x, y = lw.s_in(a, t), lw.s_in(bb, t)
    rule = COMPARE[cc]
    if t == "f32":
        fcmp = b.fcmp_ordered if rule.f32_ordered else b.fcmp_unordered
        m = fcmp(rule.pred, x, y)
    else:
        m = b.icmp_signed(rule.pred, x, y)
    if d.cls == "v":
        lw.vset(d.idx, b.sext(m, ivty(t)))
        return
    r = b.zext(m, I64)
    lw.rset(d.idx, r)
    fl = b.load(lw.FL)
    fl = b.or_(b.and_(fl, ir.Constant(I64, ~FLAG_CMP)), r)
    b.store(fl, lw.FL)


def _shuffle(b: ir.IRBuilder, x, idx: list[int]):
    return b.shuffle_vector(x, x, const(_mask_type(len(idx)), idx))


_MASK_TYPES: dict[int, ir.VectorType] = {}


def _mask_type(n: int) -> ir.VectorType:
    t = _MASK_TYPES.get(n)
    if t is None:
        t = _MASK_TYPES[n] = ir.VectorType(I32, n)
    return t


@lower("DRED")
def _red(lw: Lowerer, ins: Instr):
    d, a = ins.args
    t, op = ins.type, ins.mod
    b = lw.b
    x = lw.vget(a.idx, t, True)
    n = lanes(t)
    bits = type_size(t) * 8
    while n > 1:
        n //= 2
        lo = _shuffle(b, x, list(range(n)))
        hi = _shuffle(b, x, list(range(n, 2 * n)))
        if t == "f32":
            x = b.fadd(lo, hi) if op == "add" else _fminmax(lw, "DMIN" if op == "min" else "DMAX", lo, hi)
        else:
            x = _int_binop(lw, {"add": "DADD", "min": "DMIN", "max": "DMAX"}[op], lo, hi, bits)
    r = b.extract_element(x, ir.Constant(I32, 0))
    lw.rset(d.idx, lw.s_out(r, t))


@lower("DSEL")
def _sel(lw: Lowerer, ins: Instr):
    d, m, a, bb = ins.args
    t = ins.type
    b = lw.b
    if d.cls == "v":
        vm, va = lw.vgeti(m.idx, t), lw.vgeti(a.idx, t)
        vb = b.bitcast(imm_vec(lw, bb.value, t), ivty(t)) if isinstance(bb, Imm) else lw.vgeti(bb.idx, t)
        lw.vset(d.idx, b.select(b.icmp_unsigned("!=", vm, splat(0, ivty(t))), va, vb))
        return
    mv = b.trunc(lw.rget(m.idx), ity(t)) if t != "i64" else lw.rget(m.idx)
    bv = ir.Constant(I64, bb.value) if isinstance(bb, Imm) else lw.rget(bb.idx)
    lw.rset(d.idx, b.select(b.icmp_unsigned("!=", mv, ir.Constant(mv.type, 0)), lw.rget(a.idx), bv))


@lower("DMOV")
def _mov(lw: Lowerer, ins: Instr):
    d, a = ins.args
    if d.cls == "v":
        lw.vset(d.idx, lw.vraw(a.idx))
        return
    if isinstance(a, Imm):
        x = lw.lifted_imm()
        if x is not None:
            lw.rset(d.idx, x)
            return
        v = a.value if ins.type != "f32" else a.value & 0xFFFFFFFF
        lw.rset(d.idx, ir.Constant(I64, v))
    elif a.cls == "s":
        lw.rset(d.idx, (lw.sid, lw.scount, lambda: lw.b.load(lw.FL))[a.idx]())
    else:
        lw.rset(d.idx, lw.rget(a.idx))


@lower("DSQRT")
def _sqrt(lw: Lowerer, ins: Instr):
    d, a = ins.args
    if d.cls == "v":
        x = lw.vget(a.idx, "f32", True)
        lw.vset_f32(d.idx, lw.call("llvm.sqrt.v16f32", x.type, [x]))
    else:
        x = lw.s_in(a, "f32")
        lw.rset(d.idx, lw.s_out(lw.call("llvm.sqrt.f32", F32, [x]), "f32"))


# ------------------------------------------------------------------ conversions
def _f32_to_bf16(lw: Lowerer, f):
    """numerics.f32_array_to_bf16 on a <n x float>: RNE; NaN -> sign | 0x7FC0."""
    b = lw.b
    n = f.type.count
    u = b.bitcast(f, _vt(n, I32))
    u64 = b.zext(u, _vt(n, I64))
    lsb = b.and_(b.lshr(u64, splat(16, _vt(n, I64))), splat(1, _vt(n, I64)))
    r = b.trunc(
        b.lshr(b.add(b.add(u64, splat(0x7FFF, _vt(n, I64))), lsb), splat(16, _vt(n, I64))), _vt(n, I16)
    )
    isnan = b.and_(
        b.icmp_unsigned("==", b.and_(u, splat(0x7F800000, _vt(n, I32))), splat(0x7F800000, _vt(n, I32))),
        b.icmp_unsigned("!=", b.and_(u, splat(0x7FFFFF, _vt(n, I32))), splat(0, _vt(n, I32))),
    )
    nanv = b.trunc(
        b.or_(
            b.and_(b.lshr(u, splat(16, _vt(n, I32))), splat(0x8000, _vt(n, I32))), splat(0x7FC0, _vt(n, I32))
        ),
        _vt(n, I16),
    )
    return b.select(isnan, nanv, r)


def convert(lw: Lowerer, x, src: str, dst: str):
    """semantics.convert on a vector of n lanes (scalars use 1-lane vectors)."""
    b = lw.b
    n = x.type.count
    if src == dst:
        return x
    if src == "bf16":
        f = b.bitcast(b.shl(b.zext(x, _vt(n, I32)), splat(16, _vt(n, I32))), _vt(n, F32))
        return convert(lw, f, "f32", dst)
    if dst == "bf16":
        f = x if src == "f32" else b.sitofp(x, _vt(n, F32))
        return _f32_to_bf16(lw, f)
    if dst == "f32":
        return b.sitofp(x, _vt(n, F32))
    dty = _vt(n, ELEM[dst])
    bits = type_size(dst) * 8
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if src == "f32":
        dd = b.fpext(x, _vt(n, F64))
        r = lw.call(f"llvm.roundeven.v{n}f64", dd.type, [dd])
        bad = b.fcmp_unordered("uno", r, r)
        bad = b.or_(bad, b.fcmp_ordered("<", r, splat(float(lo), dd.type)))
        if bits == 64:
            bad = b.or_(bad, b.fcmp_ordered(">=", r, splat(float(2**63), dd.type)))
        else:
            bad = b.or_(bad, b.fcmp_ordered(">", r, splat(float(hi), dd.type)))
        safe = b.select(bad, splat(0.0, dd.type), r)
        return b.select(bad, splat(lo, dty), b.fptosi(safe, dty))
    # int -> int: widen by sign extension, narrow with saturation
    sbits = type_size(src) * 8
    if bits > sbits:
        return b.sext(x, dty)
    c = b.select(b.icmp_signed("<", x, splat(lo, x.type)), splat(lo, x.type), x)
    c = b.select(b.icmp_signed(">", c, splat(hi, x.type)), splat(hi, x.type), c)
    return b.trunc(c, dty)


@lower("DCVT")
def _cvt(lw: Lowerer, ins: Instr):
    d, a, part = ins.args
    dt, st = ins.type, ins.type2
    p = part.value if part is not None else 0
    b = lw.b
    if d.cls == "r":
        x = b.trunc(lw.rget(a.idx), ity(st)) if st != "i64" else lw.rget(a.idx)
        if st == "f32":
            x = b.bitcast(x, F32)
        xv = b.insert_element(ir.Constant(_vt(1, x.type), None), x, ir.Constant(I32, 0))
        r = b.extract_element(convert(lw, xv, st, dt), ir.Constant(I32, 0))
        lw.rset(d.idx, lw.s_out(r, dt))
        return
    ds, ss = type_size(dt), type_size(st)
    n = VEC_BYTES // max(ds, ss)
    if ds != ss and (p + 1) * n > VEC_BYTES // min(ds, ss):
        lw.fault_now()  # semantics raises "DCVT part p out of range" (see report: at build time)
        return
    va = lw.vget(a.idx, st)
    if ds > ss:
        src = _shuffle(b, va, list(range(p * n, p * n + n)))
        lw.vset(d.idx, convert(lw, src, st, dt))
    elif ds < ss:
        conv = convert(lw, va, st, dt)  # n lanes of dt
        old = lw.vget(d.idx, dt)
        total = lanes(dt)
        wide = b.shuffle_vector(conv, conv, ir.Constant(_vt(total, I32), [i % n for i in range(total)]))
        mask = [total + i if p * n <= i < p * n + n else i for i in range(total)]
        lw.vset(d.idx, b.shuffle_vector(old, wide, ir.Constant(_vt(total, I32), mask)))
    else:
        lw.vset(d.idx, convert(lw, va, st, dt))


@lower("DBCAST")
def _bcast(lw: Lowerer, ins: Instr):
    d, a = ins.args
    t = ins.type
    b = lw.b
    if isinstance(a, Imm):
        lw.vset(d.idx, imm_vec(lw, a.value, t))
        return
    x = lw.s_in(a, t)
    n = lanes(t)
    v = b.insert_element(ir.Constant(_vt(n, x.type), None), x, ir.Constant(I32, 0))
    lw.vset(d.idx, _shuffle(b, v, [0] * n))


# DSHUF as one AVX-512 lane permute (vpermd / vpermq / vpermw / vpermb): lane bits -> (intrinsic, the
# CPU features it needs). The permute reads the low log2(lanes) bits of each index, the ``mod lanes``
# of the semantics. Without the features, the lane-by-lane form below: 16-64 extracts and inserts,
# which LLVM's instruction selection turns into the same permute where it can -- the intrinsic says it
# in one call instead (an i8 shuffle was 128 IR instructions), whatever the pipeline.
_PERMVAR = {
    32: ("llvm.x86.avx512.permvar.si.512", {"avx512f"}),
    64: ("llvm.x86.avx512.permvar.di.512", {"avx512f"}),
    16: ("llvm.x86.avx512.permvar.hi.512", {"avx512bw"}),
    8: ("llvm.x86.avx512.permvar.qi.512", {"avx512vbmi"}),
}


@lower("DSHUF")
def _shuf(lw: Lowerer, ins: Instr):
    d, a, idx = ins.args
    t = ins.type
    b = lw.b
    n = lanes(t)
    va, vi = lw.vgeti(a.idx, t), lw.vgeti(idx.idx, t)
    masked = b.and_(vi, splat(n - 1, vi.type))
    perm = _PERMVAR.get(512 // n)
    if perm is not None and not lw.portable and perm[1] <= lw.features:
        f = lw.intrinsic(perm[0], va.type, [va.type, va.type])
        lw.vset(d.idx, b.call(f, [va, masked]))
        return
    out = ir.Constant(va.type, None)
    for i in range(n):
        k = b.extract_element(masked, ir.Constant(I32, i))
        out = b.insert_element(out, b.extract_element(va, k), ir.Constant(I32, i))
    lw.vset(d.idx, out)


def _group4_sum(lw: Lowerer, prod):
    """<64 x i32> -> <16 x i32>: lane j = sum of lanes 4j..4j+3 (wrapping)."""
    b = lw.b
    parts = [_shuffle(b, prod, [4 * j + t for j in range(16)]) for t in range(4)]
    return b.add(b.add(parts[0], parts[1]), b.add(parts[2], parts[3]))


def _vnni(lw: Lowerer) -> bool:
    return not lw.portable and {"avx512vnni", "avx512bw", "avx512f"} <= lw.features


def _amd(lw: Lowerer) -> bool:
    """An AMD CPU (SSE4a: no Intel CPU has it). Zen 4 runs a 512-bit vpdpbusd or vgf2p8affineqb one per
    cycle on the same two pipes, while word shifts and masks issue elsewhere, so DTDOT extracts one code
    plane with gfni and two with shift + mask: a register-only loop of the M = 1 tmatmul mix (4 vpdpbusd
    per 64 weight bytes) ran at 42 GB/s of weights against 33 with gfni for all three planes and 38
    with none. On Intel the shifts share port 0 with vpdpbusd and gfni relieves it (gfni for all)."""
    return "sse4a" in lw.features


def _dpbusd(lw: Lowerer, acc, u8, s8):
    """vpdpbusd: acc.i32[j] += sum_t u8[4j+t] * s8[4j+t] (wrapping)."""
    v16 = _vt(16, I32)
    return lw.call("llvm.x86.avx512.vpdpbusd.512", v16, [acc, lw.b.bitcast(u8, v16), lw.b.bitcast(s8, v16)])


@lower("DTERNARY")
def _ternary(lw: Lowerer, ins: Instr):
    d, a, w, q = ins.args
    qi = q.value if q is not None else 0
    b = lw.b
    v16 = _vt(16, I32)
    acc = lw.vget(d.idx, "i32")
    act = lw.vget(a.idx, "i8")
    wb = lw.vraw(w.idx)
    if _vnni(lw) and "avx512vbmi" in lw.features:
        # 16-bit word i of the quarter (codes 8i..8i+7) -> the low bits of qword i (one vpermb; the
        # other bytes are don't-care: only bits 0..15 survive the mask below); vpmultishiftqb then
        # puts bits 2k.. of each qword into its byte k, so code k lands in byte k
        x = _shuffle(b, wb, [qi * 16 + 2 * (k // 8) + (k & 1) for k in range(64)])
        ctrl = ir.Constant(_vt(64, I8), [2 * (k % 8) for k in range(64)])
        ms = lw.call("llvm.x86.avx512.pmultishift.qb.512", _vt(64, I8), [ctrl, x])
        codes = b.and_(ms, splat(3, _vt(64, I8)))
    else:
        # byte j of the quarter holds the 4 codes of group j: spread them into the 4 bytes of i32 lane j
        x = b.zext(_shuffle(b, wb, list(range(qi * 16, qi * 16 + 16))), v16)
        y = b.or_(
            b.or_(x, b.shl(x, splat(6, v16))), b.or_(b.shl(x, splat(12, v16)), b.shl(x, splat(18, v16)))
        )
        codes = b.bitcast(b.and_(y, splat(0x03030303, v16)), _vt(64, I8))  # code k in byte k (0..3)
    if _vnni(lw):
        # sum (c - 1) * a = sum c * a - sum a   (codes unsigned, activations signed)
        r = _dpbusd(lw, acc, codes, act)
        corr = _dpbusd(lw, splat(0, v16), splat(1, _vt(64, I8)), act)
        lw.vset(d.idx, b.sub(r, corr))
        return
    wv = b.sub(b.zext(codes, _vt(64, I32)), splat(1, _vt(64, I32)))
    prod = b.mul(b.sext(act, _vt(64, I32)), wv)
    lw.vset(d.idx, b.add(acc, _group4_sum(lw, prod)))


@lower("DTDOT")
def _tdot(lw: Lowerer, ins: Instr):
    d, a, w, q = ins.args
    shift = 2 * (q.value if q is not None else 0)
    b = lw.b
    acc = lw.vget(d.idx, "i32")
    act = lw.vget(a.idx, "i8")
    wb = lw.vraw(w.idx)
    if _vnni(lw) and "gfni" in lw.features and shift and not (_amd(lw) and shift > 2):
        # one vgf2p8affineqb moves bits 2q, 2q+1 of every byte to bits 0, 1 (matrix row 7-i picks the
        # source bits of result bit i); a shift of 16-bit words would need a mask as well. On AMD only
        # plane 1 (see _amd): planes 2 and 3 take the shift and the mask
        mat = (1 << shift) << 56 | (2 << shift) << 48
        codes = lw.call(
            "llvm.x86.vgf2p8affineqb.512",
            _vt(64, I8),
            [wb, lw.b.bitcast(splat(mat, _vt(8, I64)), _vt(64, I8)), ir.Constant(I8, 0)],
        )
    else:
        # a shift of 16-bit words then a byte mask (LLVM has no 8-bit vector shift on x86)
        x = b.bitcast(wb, _vt(32, I16))
        if shift:
            x = b.lshr(x, splat(shift, _vt(32, I16)))
        codes = b.and_(b.bitcast(x, _vt(64, I8)), splat(3, _vt(64, I8)))
    if _vnni(lw):
        lw.vset(d.idx, _dpbusd(lw, acc, codes, act))  # codes unsigned (0..3), activations signed
        return
    prod = b.mul(b.sext(act, _vt(64, I32)), b.zext(codes, _vt(64, I32)))
    lw.vset(d.idx, b.add(acc, _group4_sum(lw, prod)))


@lower("DDOT")
def _ddot(lw: Lowerer, ins: Instr):
    d, a, bb = ins.args
    b = lw.b
    if ins.type == "i8":
        acc = lw.vget(d.idx, "i32")
        x, y = lw.vget(a.idx, "i8"), lw.vget(bb.idx, "i8")
        v16 = _vt(16, I32)
        if _vnni(lw):
            # a*b = (a ^ 0x80) * b - 128 * b   with (a ^ 0x80) read unsigned
            ux = b.xor(x, splat(0x80 - 256, x.type))
            r = _dpbusd(lw, acc, ux, y)
            sb = _dpbusd(lw, splat(0, v16), splat(1, _vt(64, I8)), y)
            lw.vset(d.idx, b.sub(r, b.shl(sb, splat(7, v16))))
            return
        prod = b.mul(b.sext(x, _vt(64, I32)), b.sext(y, _vt(64, I32)))
        lw.vset(d.idx, b.add(acc, _group4_sum(lw, prod)))
        return
    acc = lw.vget(d.idx, "f32")
    fa = convert(lw, lw.vgeti(a.idx, "bf16"), "bf16", "f32")
    fb = convert(lw, lw.vgeti(bb.idx, "bf16"), "bf16", "f32")
    even, odd = list(range(0, 32, 2)), list(range(1, 32, 2))
    p0 = b.fmul(_shuffle(b, fa, even), _shuffle(b, fb, even))
    p1 = b.fmul(_shuffle(b, fa, odd), _shuffle(b, fb, odd))
    lw.vset(d.idx, lw.canon(b.fadd(b.fadd(acc, p0), p1)))


# =================================================================== D pipe: control flow
@lower("DNOP", "SNOP", "CNOP")
def _nop(lw: Lowerer, ins: Instr):  # pragma: no cover - NOPs are skipped by the driver
    return None


@lower("DJMP")
def _jmp(lw: Lowerer, ins: Instr):
    lw.branch = (None, ins.args[0].value)


@lower("DBRT", "DBRF")
def _br(lw: Lowerer, ins: Instr):
    b = lw.b
    set_ = b.icmp_unsigned("!=", b.and_(b.load(lw.FL), ir.Constant(I64, FLAG_CMP)), ir.Constant(I64, 0))
    lw.branch = (set_ if ins.op.name == "DBRT" else b.not_(set_), ins.args[0].value)


@lower("DLOOP")
def _loop(lw: Lowerer, ins: Instr):
    r, label = ins.args
    b = lw.b
    v = b.sub(lw.rget(r.idx), ir.Constant(I64, 1))
    lw.rset(r.idx, v)
    lw.branch = (b.icmp_unsigned("!=", v, ir.Constant(I64, 0)), label.value)


@lower("DHALT")
def _halt(lw: Lowerer, ins: Instr):
    lw.halt = True


# =================================================================== S pipe
def _mem_off(lw: Lowerer, m):
    """A memory operand's byte offset as an i64: the immediate, or the register plus its displacement
    (wrapping, as the interpreter's ``semantics._mem_parts``)."""
    if not isinstance(m.off, Reg):
        return ir.Constant(I64, m.off.value)
    r = lw.rget(m.off.idx)
    return lw.b.add(r, ir.Constant(I64, m.disp)) if m.disp else r


def _ends(lw: Lowerer, size, n: int):
    """The number of valid start offsets of an ``n``-byte access to a scroll of ``size`` bytes:
    ``max(size - n + 1, 0)``. ``0 <= off <= size - n`` (signed) holds exactly when ``off <u ends``: a
    negative ``off`` is a huge unsigned value, and a scroll shorter than ``n`` gives 0 (nothing passes).
    It depends only on the scroll size, so in a loop that keeps its translations (fast loop clones)
    LLVM hoists it and each access costs one compare-and-branch."""
    b = lw.b
    d = b.sub(size, ir.Constant(I64, n - 1))
    if lw.segment_plan is not None:  # tier 0: a select, which the fast instruction selector takes
        return b.select(b.icmp_signed(">", d, ir.Constant(I64, 0)), d, ir.Constant(I64, 0))
    return lw.call("llvm.smax.i64", I64, [d, ir.Constant(I64, 0)])


def _check_range(lw: Lowerer, off, n: int, size):
    """Fault unless 0 <= off and off + n <= size (no overflow: size - n is small), as one unsigned
    compare against ``_ends``."""
    lw.fault_if(lw.b.icmp_unsigned(">=", off, _ends(lw, size, n)))


def _addr(lw: Lowerer, ptr, off):
    return lw.b.gep(ptr, [off], source_etype=I8)


# Full 64-byte i8 vector loads -- the weight streams of tmatmul's t2 tiles and of the int8 head --
# also prefetch the line this many bytes ahead. A prefetch is a hint (it never faults, whatever the
# address), so the semantics are unchanged. The GEMV's loop has ~130 instructions per 512 bytes, which
# fill the out-of-order window before enough DRAM misses are in flight; the prefetches retire at once.
# Paired, 6 x 80 MiB of weights (past the 300 MiB L3): 11.2-12.2 -> 13.4-14.5 GB/s against a native read
# at 14.4-15.7 GB/s (1024 ahead: within 3 % of 512; 2048: slower). Other types are left alone: their
# large operands (f32 GEMM strips, KV cache rows) are read from cache or in short rows.
# On AMD (see _amd) 256: on Zen 4 the int8 head's 4 row streams read at 25-27 GB/s with 512 and 31-33 with
# 256 or less (84 MB, best of 21 runs, alternated; native read 29-31); the 4 M = 1 tmatmul streams read
# the same at 128-512 (24-30 GB/s) and slower with none (21-23).
PREFETCH_AHEAD = 512
PREFETCH_AHEAD_AMD = 256


def _prefetch_ahead(lw: Lowerer, addr) -> None:
    dist = PREFETCH_AHEAD_AMD if _amd(lw) else PREFETCH_AHEAD
    ahead = lw.b.gep(addr, [ir.Constant(I64, dist)], source_etype=I8)
    # llvm.prefetch(address, rw = 0 read, locality = 3 keep in all levels, cache type = 1 data)
    args = [ahead, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]
    lw.call("llvm.prefetch.p0", ir.VoidType(), args)


def access_extent(ins: Instr) -> tuple[int, Reg | Imm, int, int] | None:
    """(p register, offset operand, bytes from the offset, displacement) of an S access whose bounds check is one
    range check of its offset -- ``0 <= off <= size - bytes`` (scalar and contiguous accesses, and
    strided gathers with a constant stride >= 0 lowered as span loads) -- else None. The lowering and
    compile._bounded_offsets agree on these through this function. The offset is the operand's
    register or immediate; the displacement (``[p + r + disp]``, else 0) adds to it."""
    name = ins.op.name
    if name not in ("SGATHER", "SSCATTR"):
        return None
    store = name == "SSCATTR"
    m, reg = (ins.args[0], ins.args[1]) if store else (ins.args[1], ins.args[0])
    t = ins.type
    if reg.cls == "r":
        if m.mode != MEM_CONTIG or m.extra is not None:
            return None
        return m.base, m.off, type_size(t), m.disp
    if m.mode == MEM_CONTIG:
        nb = m.extra.value if m.extra is not None else VEC_BYTES
        return (m.base, m.off, nb, m.disp) if 1 <= nb <= VEC_BYTES else None
    if not store and m.mode == MEM_STRIDED and isinstance(m.extra, Imm) and 0 <= m.extra.value:
        span = (lanes(t) - 1) * m.extra.value + type_size(t)
        if span <= SPAN_LIMIT:
            return m.base, m.off, span, m.disp
    return None


def _proven(lw: Lowerer) -> bool:
    """The current access is in bounds on every trip of this fast loop clone (see Lowerer.unchecked)."""
    return lw.known_mru and (lw.pc, lw.slot) in lw.unchecked


@lower("SGATHER", "SSCATTR")
def _gather_scatter(lw: Lowerer, ins: Instr):
    store = ins.op.name == "SSCATTR"
    m, reg = (ins.args[0], ins.args[1]) if store else (ins.args[1], ins.args[0])
    t = ins.type
    size = type_size(t)
    b = lw.b
    if reg.cls == "r":
        if m.mode != MEM_CONTIG or m.extra is not None:
            lw.fault_now()
            return
        off = _mem_off(lw, m)
        ptr, ssize = lw.translate(m.base)
        if not _proven(lw):
            _check_range(lw, off, size, ssize)
        jit_comm.note_access(lw, m.base, store)
        addr = _addr(lw, ptr, off)
        if store:
            x = lw.rget(reg.idx)
            b.store(b.trunc(x, ity(t)) if t != "i64" else x, addr, align=1)
        else:
            x = b.load(addr, typ=ity(t), align=1)
            if t in ("f32", "bf16"):
                lw.rset(reg.idx, b.zext(x, I64))
            else:
                lw.rset(reg.idx, b.sext(x, I64) if t != "i64" else x)
        return
    n_lanes = lanes(t)
    if m.mode == MEM_CONTIG:
        nb = m.extra.value if m.extra is not None else VEC_BYTES
        if not 1 <= nb <= VEC_BYTES:
            lw.fault_now()
            return
        off = _mem_off(lw, m)
        ptr, ssize = lw.translate(m.base)
        if not _proven(lw):
            _check_range(lw, off, nb, ssize)
        jit_comm.note_access(lw, m.base, store)
        addr = _addr(lw, ptr, off)
        if nb == VEC_BYTES:
            if store:
                b.store(lw.vraw(reg.idx), addr, align=1)
            else:
                lw.vset(reg.idx, b.load(addr, typ=VB, align=1))
                if t == "i8":
                    _prefetch_ahead(lw, addr)
            return
        mask = ir.Constant(_vt(64, I1), [1 if i < nb else 0 for i in range(64)])
        if store:
            lw.call(
                "llvm.masked.store.v64i8.p0",
                ir.VoidType(),
                [lw.vraw(reg.idx), addr, ir.Constant(I32, 1), mask],
            )
        else:
            v = lw.call("llvm.masked.load.v64i8.p0", VB, [addr, ir.Constant(I32, 1), mask, splat(0, VB)])
            lw.vset(reg.idx, v)
        return
    if m.mode != MEM_STRIDED and n_lanes > 16:
        raise Unsupported(
            f"indexed {ins.mnemonic()} with {n_lanes} lanes: the golden model reads only 16 "
            f"i32 indexes (see docs/jit.md)"
        )
    off = _mem_off(lw, m)
    li = _vt(n_lanes, I64)
    if not store and m.mode == MEM_STRIDED and isinstance(m.extra, Imm) and 0 <= m.extra.value:
        span = (n_lanes - 1) * m.extra.value + size
        if span <= SPAN_LIMIT:
            _gather_span(lw, ins, reg, m, off, m.extra.value, size, n_lanes, span)
            return
    if m.mode == MEM_STRIDED:
        stride = lw.rget(m.extra.idx) if isinstance(m.extra, Reg) else ir.Constant(I64, m.extra.value)
        lim = ir.Constant(I64, 1 << 40)
        # huge strides/offsets always leave the scroll (size <= 2**31): fault before anything can wrap
        guard = b.or_(
            b.icmp_signed(">", stride, lim), b.icmp_signed("<", stride, ir.Constant(I64, -(1 << 40)))
        )
        sv = b.insert_element(ir.Constant(li, None), stride, ir.Constant(I32, 0))
        sv = _shuffle(b, sv, [0] * n_lanes)
        rel = b.mul(sv, ir.Constant(li, list(range(n_lanes))))
    else:
        idx = _shuffle(b, lw.vget(m.extra.idx, "i32"), list(range(n_lanes)))
        rel = b.mul(b.sext(idx, li), splat(size, li))
        guard = ir.Constant(I1, 0)
    lim62 = ir.Constant(I64, 1 << 62)
    guard = b.or_(
        guard, b.or_(b.icmp_signed(">", off, lim62), b.icmp_signed("<", off, ir.Constant(I64, -(1 << 62))))
    )
    ptr, ssize = lw.translate(m.base)
    ov = _shuffle(b, b.insert_element(ir.Constant(li, None), off, ir.Constant(I32, 0)), [0] * n_lanes)
    offs = b.add(ov, rel)
    if m.mode == MEM_STRIDED:
        hi = _shuffle(
            b,
            b.insert_element(
                ir.Constant(li, None), b.sub(ssize, ir.Constant(I64, size)), ir.Constant(I32, 0)
            ),
            [0] * n_lanes,
        )
        bad = b.or_(b.icmp_signed("<", offs, splat(0, li)), b.icmp_signed(">", offs, hi))
        lw.fault_if(b.or_(guard, lw.any_true(bad)))
    elif not _proven(lw):
        lw.fault_if(b.or_(guard, _index_out_of_range(lw, idx, off, ssize, size)))
    jit_comm.note_access(lw, m.base, store)
    et = ity(t)
    if _vector_gather(lw, n_lanes, size):
        _gather_scatter_native(lw, ins, reg, m, off, ptr, n_lanes, size, store)
        return
    small = None
    if not store and n_lanes == 16 and size == 4 and _avx512(lw):
        if lw.known_mru and (lw.pc, lw.slot) in lw.window_proven:
            lw.vset(reg.idx, _window_permute(lw, ptr, off, idx))
            return
        if m.mode == MEM_STRIDED:
            small, out_small, join = _gather_window(lw, ptr, ssize, off, offs)
        else:
            small, out_small, join = _gather_window_indexed(lw, ptr, ssize, off, idx)
    if store:
        src = lw.vgeti(reg.idx, t)
        for i in range(n_lanes):  # lane order: the highest lane wins on overlap
            o = b.extract_element(offs, ir.Constant(I32, i))
            b.store(b.extract_element(src, ir.Constant(I32, i)), _addr(lw, ptr, o), align=1)
        return
    out = ir.Constant(_vt(n_lanes, et), None)
    for i in range(n_lanes):
        o = b.extract_element(offs, ir.Constant(I32, i))
        out = b.insert_element(out, b.load(_addr(lw, ptr, o), typ=et, align=1), ir.Constant(I32, i))
    if small is not None:
        lanes_end = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(out.type)
        phi.add_incoming(out_small, small)
        phi.add_incoming(out, lanes_end)
        out = phi
    lw.vset(reg.idx, out)


# AVX-512 gathers/scatters with 32-bit offsets (one vpgatherdd / vpscatterdd per access): "masked"
# (llvm.masked.gather/scatter), "x86" (the llvm.x86.avx512 intrinsics) or "" (per-lane accesses, the
# default: on Zen 4 every gather/scatter form measured slower than lane by lane, see docs/jit.md)
VGATHER = ""


def _avx512(lw: Lowerer) -> bool:
    return not lw.portable and "avx512f" in lw.features


# indexed/strided 32-bit gathers whose lanes all lie in the first WINDOW bytes of a scroll of at least
# WINDOW bytes: four 64-byte loads of the window + two vpermi2d + one blend instead of 16 scalar loads
# (_gather_window)
WINDOW = 256


def _gather_window(lw: Lowerer, ptr, ssize, off, offs):
    """Emit ``if every lane offset is a multiple of 4 and < 256 <= scroll size`` around a permute-based
    16 x 32-bit gather (the caller emits the per-lane gather on the else edge and joins). Every lane was
    bounds-checked (0 <= o <= size - 4), so lane i is dword o/4 < 64 of the window, which lies inside
    the scroll. Returns (block the permuted value comes from, the value, join block)."""
    b = lw.b
    tag = f"{lw.pc}_{lw.slot}"
    fast = lw.new_block(f"gwin_{tag}")
    slow = lw.new_block(f"glanes_{tag}")
    join = lw.new_block(f"gjoin_{tag}")
    # every lane (not just the base offset) must be dword-aligned: a stride that is not a multiple of 4
    # puts lanes between dwords, which the permute cannot express (#11 bug 1)
    inside = b.and_(
        b.icmp_signed("<", offs, splat(WINDOW, offs.type)),
        b.icmp_unsigned("==", b.and_(offs, splat(3, offs.type)), splat(0, offs.type)),
    )
    cond = b.and_(
        b.icmp_signed(">=", ssize, ir.Constant(I64, WINDOW)),
        lw.call("llvm.vector.reduce.and.v16i1", I1, [inside]),
    )
    b.cbranch(cond, fast, slow)
    b.position_at_end(fast)
    v16 = _vt(16, I32)
    parts = [
        b.bitcast(b.load(_addr(lw, ptr, ir.Constant(I64, 64 * k)), typ=VB, align=1), v16) for k in range(4)
    ]
    dw = b.trunc(b.ashr(offs, splat(2, offs.type)), v16)  # dword index 0..63
    lo = lw.call("llvm.x86.avx512.vpermi2var.d.512", v16, [parts[0], dw, parts[1]])
    hi = lw.call("llvm.x86.avx512.vpermi2var.d.512", v16, [parts[2], dw, parts[3]])
    sel = b.icmp_unsigned("!=", b.and_(dw, splat(32, v16)), splat(0, v16))
    out = b.select(sel, hi, lo)
    fast_end = b.block
    b.branch(join)
    b.position_at_end(slow)
    return fast_end, out, join


_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def _index_out_of_range(lw: Lowerer, idx, off, ssize, size: int):
    """i1: some lane of an indexed access leaves the scroll (lane i at byte ``off + size * idx[i]``, valid
    when ``0 <= off + size * idx[i] <= ssize - size``), compared in the index's own i32 lanes.

    The valid indexes are exactly ``L <= idx <= H`` with ``L = ceil(-off / size) = -(off >> k)`` and
    ``H = floor((ssize - size - off) / size) = (ssize - size - off) >> k`` (``size = 2**k``; ``|off| <
    2**62`` is guarded by the caller, so nothing overflows). When that range is empty or lies outside
    i32 no index is valid; otherwise clamping L and H to i32 changes no lane's answer. L and H depend
    only on the offset and the scroll size, so for a constant offset in a loop that keeps its
    translation LLVM hoists them: two 16-lane compares instead of sixteen i64 lane offsets."""
    b = lw.b
    k = ir.Constant(I64, size.bit_length() - 1)
    lo = b.neg(b.ashr(off, k))
    hi = b.ashr(b.sub(b.sub(ssize, ir.Constant(I64, size)), off), k)
    empty = b.or_(
        b.icmp_signed(">", lo, hi),
        b.or_(
            b.icmp_signed(">", lo, ir.Constant(I64, _I32_MAX)),
            b.icmp_signed("<", hi, ir.Constant(I64, _I32_MIN)),
        ),
    )
    lo32 = b.trunc(lw.call("llvm.smax.i64", I64, [lo, ir.Constant(I64, _I32_MIN)]), I32)
    hi32 = b.trunc(lw.call("llvm.smin.i64", I64, [hi, ir.Constant(I64, _I32_MAX)]), I32)
    n = idx.type.count
    vt = _vt(n, I32)
    lov = _shuffle(b, b.insert_element(ir.Constant(vt, None), lo32, ir.Constant(I32, 0)), [0] * n)
    hiv = _shuffle(b, b.insert_element(ir.Constant(vt, None), hi32, ir.Constant(I32, 0)), [0] * n)
    bad = b.or_(b.icmp_signed("<", idx, lov), b.icmp_signed(">", idx, hiv))
    return b.or_(empty, lw.any_true(bad))


def _gather_window_indexed(lw: Lowerer, ptr, ssize, off, idx):
    """``_gather_window`` for an indexed 16 x 32-bit gather, decided on the i32 indexes: with ``off % 4
    == 0`` every lane is dword-aligned, and lane ``off + 4 * idx[i]`` (already bounds-checked, so >= 0)
    is below 256 exactly when ``idx[i] < (256 - off) / 4``; that bound is clamped to i32 (a clamped
    bound only sends lanes to the per-lane path, never wrongly to the window). Dword ``off / 4 +
    idx[i]`` is then in 0..63 (computed in i32: the true value fits)."""
    b = lw.b
    tag = f"{lw.pc}_{lw.slot}"
    fast = lw.new_block(f"gwin_{tag}")
    slow = lw.new_block(f"glanes_{tag}")
    join = lw.new_block(f"gjoin_{tag}")
    v16 = _vt(16, I32)
    w = b.ashr(b.sub(ir.Constant(I64, WINDOW), off), ir.Constant(I64, 2))
    w = lw.call(
        "llvm.smax.i64",
        I64,
        [lw.call("llvm.smin.i64", I64, [w, ir.Constant(I64, _I32_MAX)]), ir.Constant(I64, _I32_MIN)],
    )
    wv = _shuffle(b, b.insert_element(ir.Constant(v16, None), b.trunc(w, I32), ir.Constant(I32, 0)), [0] * 16)
    inside = lw.call("llvm.vector.reduce.and.v16i1", I1, [b.icmp_signed("<", idx, wv)])
    scalar_ok = b.and_(
        b.icmp_signed(">=", ssize, ir.Constant(I64, WINDOW)),
        b.icmp_unsigned("==", b.and_(off, ir.Constant(I64, 3)), ir.Constant(I64, 0)),
    )
    b.cbranch(b.and_(scalar_ok, inside), fast, slow)
    b.position_at_end(fast)
    out = _window_permute(lw, ptr, off, idx)
    fast_end = b.block
    b.branch(join)
    b.position_at_end(slow)
    return fast_end, out, join


def _window_permute(lw: Lowerer, ptr, off, idx):
    """Lanes ``off + 4 * idx[i]`` of the scroll's first 256 bytes (the caller established that every
    lane is dword-aligned and inside the window): four loads, two vpermi2d and a select."""
    b = lw.b
    v16 = _vt(16, I32)
    parts = [
        b.bitcast(b.load(_addr(lw, ptr, ir.Constant(I64, 64 * k)), typ=VB, align=1), v16) for k in range(4)
    ]
    base = b.trunc(b.ashr(off, ir.Constant(I64, 2)), I32)
    dw = b.add(
        idx, _shuffle(b, b.insert_element(ir.Constant(v16, None), base, ir.Constant(I32, 0)), [0] * 16)
    )
    lo = lw.call("llvm.x86.avx512.vpermi2var.d.512", v16, [parts[0], dw, parts[1]])
    hi = lw.call("llvm.x86.avx512.vpermi2var.d.512", v16, [parts[2], dw, parts[3]])
    sel = b.icmp_unsigned("!=", b.and_(dw, splat(32, v16)), splat(0, v16))
    return b.select(sel, hi, lo)


def _vector_gather(lw: Lowerer, n_lanes: int, size: int) -> bool:
    return (
        bool(VGATHER)
        and not lw.portable
        and "avx512f" in lw.features
        and (n_lanes, size) in ((16, 4), (8, 8))
    )


def _gather_scatter_native(lw: Lowerer, ins: Instr, reg, m, off, ptr, n_lanes: int, size: int, store: bool):
    """A strided/indexed access as one AVX-512 gather or scatter with 32-bit byte offsets. Called after
    every lane passed the bounds check (0 <= offset <= scroll size - size, and scrolls are at most 2**31
    bytes), so each lane's offset fits in an i32 and equals the i32-wrapped computation below. On overlap
    the highest lane's store wins (vpscatterdd and llvm.masked.scatter write lanes in ascending order)."""
    b = lw.b
    i32v = _vt(n_lanes, I32)
    off32 = b.trunc(off, I32)
    ov = _shuffle(b, b.insert_element(ir.Constant(i32v, None), off32, ir.Constant(I32, 0)), [0] * n_lanes)
    if m.mode == MEM_STRIDED:
        stride = lw.rget(m.extra.idx) if isinstance(m.extra, Reg) else ir.Constant(I64, m.extra.value)
        sv = b.insert_element(ir.Constant(i32v, None), b.trunc(stride, I32), ir.Constant(I32, 0))
        rel = b.mul(_shuffle(b, sv, [0] * n_lanes), ir.Constant(i32v, list(range(n_lanes))))
    else:
        idx = _shuffle(b, lw.vget(m.extra.idx, "i32"), list(range(n_lanes)))
        rel = b.mul(idx, splat(size, i32v))
    offs = b.add(ov, rel)
    et = ity(ins.type)
    vt_ = _vt(n_lanes, et)
    mask = ir.Constant(_vt(n_lanes, I1), [1] * n_lanes)
    if VGATHER == "x86":
        sfx = {16: "dpi.512", 8: "dpq.512"}[n_lanes]
        kt = _vt(n_lanes, I1)
        if store:
            src = lw.vgeti(reg.idx, ins.type)
            lw.call(
                f"llvm.x86.avx512.mask.scatter.{sfx}",
                ir.VoidType(),
                [ptr, ir.Constant(kt, [1] * n_lanes), offs, src, ir.Constant(I32, 1)],
            )
        else:
            out = lw.call(
                f"llvm.x86.avx512.mask.gather.{sfx}",
                vt_,
                [ir.Constant(vt_, None), ptr, offs, ir.Constant(kt, [1] * n_lanes), ir.Constant(I32, 1)],
            )
            lw.vset(reg.idx, out)
        return
    ptrs = b.gep(ptr, [b.sext(offs, _vt(n_lanes, I64))], source_etype=I8)
    ptrs.type = ir.VectorType(PTR, n_lanes)  # llvmlite types a gep by its pointer operand
    if store:
        src = lw.vgeti(reg.idx, ins.type)
        lw.call(
            f"llvm.masked.scatter.v{n_lanes}i{et.width}.v{n_lanes}p0",
            ir.VoidType(),
            [src, ptrs, ir.Constant(I32, 1), mask],
        )
        return
    out = lw.call(
        f"llvm.masked.gather.v{n_lanes}i{et.width}.v{n_lanes}p0",
        vt_,
        [ptrs, ir.Constant(I32, 1), mask, ir.Constant(vt_, None)],
    )
    lw.vset(reg.idx, out)


# strided gathers covering at most this many bytes use span loads + a shuffle (_gather_span)
SPAN_LIMIT = 128


def _gather_span(lw: Lowerer, ins: Instr, reg, m, off, stride: int, size: int, n_lanes: int, span: int):
    """A strided gather with a constant stride >= 0 whose lanes lie within 128 bytes: one or two
    (masked) vector loads of the covering span and a byte shuffle. The bounds check is the per-lane
    one: lane 0 >= 0 and the last lane ends inside the scroll (the offsets are monotonic)."""
    b = lw.b
    ptr, ssize = lw.translate(m.base)
    # every lane inside <=> 0 <= off and off + span <= size (the offsets are monotonic): one unsigned
    # compare, no overflow (nothing is added to off)
    if not _proven(lw):
        lw.fault_if(b.icmp_unsigned(">=", off, _ends(lw, ssize, span)))
    jit_comm.note_access(lw, m.base, False)
    addr = _addr(lw, ptr, off)
    if stride == 0:  # a broadcast: one scalar load
        x = b.load(addr, typ=ity(ins.type), align=1)
        lw.vset(
            reg.idx,
            _shuffle(
                b, b.insert_element(ir.Constant(ivty(ins.type), None), x, ir.Constant(I32, 0)), [0] * n_lanes
            ),
        )
        return

    def part(base, nbytes):
        if nbytes >= VEC_BYTES:
            return b.load(base, typ=VB, align=1)
        mask = ir.Constant(_vt(64, I1), [1 if i < nbytes else 0 for i in range(64)])
        return lw.call("llvm.masked.load.v64i8.p0", VB, [base, ir.Constant(I32, 1), mask, splat(0, VB)])

    lo = part(addr, span)
    idx = [i * stride + k for i in range(n_lanes) for k in range(size)]
    if span > VEC_BYTES:
        hi = part(_addr(lw, addr, ir.Constant(I64, VEC_BYTES)), span - VEC_BYTES)
        v = b.shuffle_vector(lo, hi, ir.Constant(_vt(64, I32), idx))
    else:
        v = b.shuffle_vector(lo, ir.Constant(VB, None), ir.Constant(_vt(64, I32), idx))
    lw.vset(reg.idx, v)


_SHIFT = tuple((8 - i) * 10 for i in range(9))


@lower("SINDEX")
def _sindex(lw: Lowerer, ins: Instr):
    d, a, dim, delta = ins.args
    mode = ins.mod
    b = lw.b
    if mode == "carry":
        _sindex_carry(lw, ins)
        return
    sh = _SHIFT[dim.value]
    p = lw.pget(a.idx)
    dv = lw.rget(delta.idx) if isinstance(delta, Reg) else ir.Constant(I64, delta.value)
    fmask = ir.Constant(I128, 1023 << sh)
    if mode == "set":
        bad = b.or_(
            b.icmp_signed("<", dv, ir.Constant(I64, 1)), b.icmp_signed(">", dv, ir.Constant(I64, 999))
        )
        lw.fault_if(bad)
        nv = b.or_(
            b.and_(p, b.not_(fmask)),
            b.shl(b.zext(b.sub(dv, ir.Constant(I64, 1)), I128), ir.Constant(I128, sh)),
        )
        lw.pset(d.idx, nv)
        return
    f = b.trunc(b.and_(b.lshr(p, ir.Constant(I128, sh)), ir.Constant(I128, 1023)), I64)
    # in range iff -f <= delta < 999 - f  (no overflow: f is 0..998)
    inr = b.and_(
        b.icmp_signed(">=", dv, b.sub(ir.Constant(I64, 0), f)),
        b.icmp_signed("<", dv, b.sub(ir.Constant(I64, 999), f)),
    )
    if mode == "add":
        lw.fault_if(b.not_(inr))
        lw.pset(d.idx, b.add(p, b.shl(b.sext(dv, I128), ir.Constant(I128, sh))))
        return
    # wrap: (f + delta) mod 999 in 1..999 (floor modulo), computed without overflow
    r = b.add(f, b.srem(dv, ir.Constant(I64, 999)))
    r = b.select(b.icmp_signed("<", r, ir.Constant(I64, 0)), b.add(r, ir.Constant(I64, 999)), r)
    r = b.select(b.icmp_signed(">=", r, ir.Constant(I64, 999)), b.sub(r, ir.Constant(I64, 999)), r)
    lw.pset(d.idx, b.add(p, b.shl(b.sext(b.sub(r, f), I128), ir.Constant(I128, sh))))


def _floordivmod999(b: ir.IRBuilder, x):
    """Python's divmod(x, 999) on an i64 (no overflow: |x| < 2**63 and 999 > 1)."""
    k = ir.Constant(I64, 999)
    q, r = b.sdiv(x, k), b.srem(x, k)
    neg = b.icmp_signed("<", r, ir.Constant(I64, 0))
    return b.sub(q, b.zext(neg, I64)), b.select(neg, b.add(r, k), r)


def _sindex_carry(lw: Lowerer, ins: Instr):
    """coords.advance_packed(mode="carry"): a base-999 odometer over parts 0..dim; faults when the
    library over/underflows. The common case (no carry) is one add."""
    d, a, dim, delta = ins.args
    b = lw.b
    dm = dim.value
    p = lw.pget(a.idx)
    dv = lw.rget(delta.idx) if isinstance(delta, Reg) else ir.Constant(I64, delta.value)

    def field(v, k):
        return b.trunc(b.and_(b.lshr(v, ir.Constant(I128, _SHIFT[k])), ir.Constant(I128, 1023)), I64)

    def with_field(v, k, old, new):
        return b.add(v, b.shl(b.sext(b.sub(new, old), I128), ir.Constant(I128, _SHIFT[k])))

    f = field(p, dm)
    inr = b.and_(
        b.icmp_signed(">=", dv, b.sub(ir.Constant(I64, 0), f)),
        b.icmp_signed("<", dv, b.sub(ir.Constant(I64, 999), f)),
    )
    fast_v = b.add(p, b.shl(b.sext(dv, I128), ir.Constant(I128, _SHIFT[dm])))
    pre = b.block
    slow = lw.new_block(f"carry_{lw.pc}")
    join = lw.new_block(f"carried_{lw.pc}")
    weigh(b.cbranch(inr, join, slow), [1 << 20, 1])
    b.position_at_end(slow)
    q, r = _floordivmod999(b, dv)
    n = b.add(f, r)  # 0 .. 1996
    over = b.icmp_signed(">=", n, ir.Constant(I64, 999))
    n = b.select(over, b.sub(n, ir.Constant(I64, 999)), n)
    carry = b.add(q, b.zext(over, I64))
    out = with_field(p, dm, f, n)
    for k in range(dm - 1, -1, -1):
        fk = field(out, k)
        carry, nk = _floordivmod999(b, b.add(fk, carry))
        out = with_field(out, k, fk, nk)
    lw.fault_if(b.icmp_unsigned("!=", carry, ir.Constant(I64, 0)))
    slow_end = b.block
    b.branch(join)
    b.position_at_end(join)
    res = b.phi(I128)
    res.add_incoming(fast_v, pre)
    res.add_incoming(out, slow_end)
    lw.pset(d.idx, res)


@lower("SDEDUP", "SPREFCH", "SFLUSH", "SALLOC", "SFREE")
def _s_slow(lw: Lowerer, ins: Instr):
    name = ins.op.name
    if name in ("SFREE", "SFLUSH"):  # several sentrons: race-checked before the host runs them
        jit_comm.note_lifetime(lw, ins.args[0].idx, name)
    lw.slow_call()
    if name == "SALLOC":  # ... and a new scroll after
        jit_comm.note_lifetime(lw, ins.args[0].idx, name)


@lower("SCOORD")
def _scoord(lw: Lowerer, ins: Instr):
    d, c = ins.args
    if c.value == HOME_COORD:
        lw.pset(d.idx, lw.home())
    else:
        lw.pset(d.idx, ir.Constant(I128, c.value), const=c.value)


@lower("SPART")
def _spart(lw: Lowerer, ins: Instr):
    d, p, dim = ins.args
    b = lw.b
    f = b.and_(b.lshr(lw.pget(p.idx), ir.Constant(I128, _SHIFT[dim.value])), ir.Constant(I128, 1023))
    lw.rset(d.idx, b.add(b.trunc(f, I64), ir.Constant(I64, 1)))


# =================================================================== C pipe
@lower("CPACK")
def _cpack(lw: Lowerer, ins: Instr):
    m, src = ins.args
    t = ins.type
    b = lw.b
    if src.cls == "v":
        b.store(lw.vraw(src.idx), lw.M[m.idx])
        b.store(ir.Constant(I64, VEC_BYTES), lw.ML[m.idx])
        return
    size = type_size(t)
    x = lw.rget(src.idx)
    v = b.bitcast(b.insert_element(ir.Constant(_vt(8, I64), [0] * 8), x, ir.Constant(I32, 0)), VB)
    keep = ir.Constant(VB, [0xFF if i < size else 0 for i in range(64)])
    b.store(b.and_(v, keep), lw.M[m.idx])
    b.store(ir.Constant(I64, size), lw.ML[m.idx])


@lower("CUNPACK")
def _cunpack(lw: Lowerer, ins: Instr):
    d, m = ins.args
    t = ins.type
    b = lw.b
    raw = b.load(lw.M[m.idx])  # bytes beyond the payload length are kept zero
    if d.cls == "v":
        lw.vset(d.idx, raw)
        return
    x = b.extract_element(b.bitcast(raw, _vt(64 // type_size(t), ity(t))), ir.Constant(I32, 0))
    if t in ("f32", "bf16"):
        lw.rset(d.idx, b.zext(x, I64))
    else:
        lw.rset(d.idx, b.sext(x, I64) if t != "i64" else x)


@lower("CFENCE")
def _cfence(lw: Lowerer, ins: Instr):
    jit_comm.cfence(lw)


@lower("CSEND", "CRECV", "CBAR", "CREDUCE", "CCAST", "CROUTE")
def _c_blocking(lw: Lowerer, ins: Instr):
    """Blocking C-pipe ops, native (``jit_comm.py``): the ready phase ran before the SIW's slots
    (``jit_comm.ready``, emitted by the driver); this is the run phase."""
    jit_comm.run(lw, ins)
