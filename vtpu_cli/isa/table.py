"""svISA v2: the single source of truth for every op.

One :class:`Op` row per mnemonic drives the assembler (operand parsing and checking), the binary
encoder/decoder, the disassembler, the interpreter (``semantics.py`` registers one hook per op
name), the JIT and the generated reference ``docs/isa.md``. Adding an op means adding a row here,
its semantics hook and its lowering -- nothing else.

Operand specs are ``"<role>:<kind>"`` strings, optionally suffixed with ``?`` (may be omitted):

* role ``w`` (written), ``r`` (read), ``rw`` (read and written);
* kind ``r`` ``v`` ``p`` ``m`` (a register of that class), ``rv`` (scalar or vector: every ``rv``
  operand of one instruction has the same class and that picks the scalar or vector form),
  ``rvi`` (like ``rv``, or an immediate -- broadcast to every lane in the vector form),
  ``ri`` (scalar register or immediate), ``rs`` (scalar or special register: ``sid``, ``scount``,
  ``flags``) or immediate, ``imm``, ``label``, ``coord`` (a coordinate literal, a ``.coord`` name or
  ``home``), ``group`` (a ``.group`` name or number), ``mem`` (``[pN + off]``, ``[pN + off : stride]``
  or ``[pN + off + vI]``; a register offset may add a displacement, ``[pN + rM + disp]``, svISA v2).
"""

from __future__ import annotations

from dataclasses import dataclass

ISA_REVISION = 2  # v2: register offsets with a displacement ([pN + rM + disp])

# ---------------------------------------------------------------- element types
# code, name, bytes per element (0 = not a lane type), numpy dtype name of the storage
TYPES: dict[str, tuple[int, int, str]] = {
    "f32": (1, 4, "<f4"),
    "i32": (2, 4, "<i4"),
    "i16": (3, 2, "<i2"),
    "i8": (4, 1, "i1"),
    "bf16": (5, 2, "<u2"),
    "i64": (6, 8, "<i8"),
    "t2": (7, 1, "u1"),  # packed ternary: four 2-bit codes per byte (see docs/isa.md)
    "u8": (8, 1, "u1"),  # raw bytes (data directives only)
}
TYPE_BY_CODE = {code: name for name, (code, _, _) in TYPES.items()}
VEC_BYTES = 64
INT_TYPES = ("i64", "i32", "i16", "i8")
ARITH = ("f32", "i64", "i32", "i16", "i8")
ALL_LANE = ("f32", "i64", "i32", "i16", "i8", "bf16")


def type_size(t: str) -> int:
    return TYPES[t][1]


def lanes(t: str) -> int:
    return VEC_BYTES // TYPES[t][1]


# ---------------------------------------------------------------- registers
REG_COUNTS = {"r": 16, "v": 32, "p": 8, "m": 4}
REG_CLASS_CODE = {"r": 1, "v": 2, "p": 3, "m": 4, "s": 5}
SPECIAL_REGS = ("sid", "scount", "flags")  # class "s": sentron id, sentron count, status flags
FLAG_CMP = 1  # bit 0 of flags: result of the last scalar DCMP

CMP_CONDS = ("eq", "ne", "lt", "le", "gt", "ge")
RED_OPS = ("add", "min", "max")
INDEX_MODES = ("add", "wrap", "carry", "set")
ANY_SENDER = -1  # CRECV source meaning "from any sentron"
HOME_COORD = -1  # coord operand value meaning "this sentron's home coordinate"


@dataclass(frozen=True)
class Operand:
    role: str  # "r" | "w" | "rw"
    kind: str
    optional: bool = False

    @staticmethod
    def parse(spec: str) -> Operand:
        role, kind = spec.split(":")
        opt = kind.endswith("?")
        return Operand(role, kind.rstrip("?"), opt)


@dataclass(frozen=True)
class Op:
    name: str
    code: int  # stable opcode byte, part of the .siw format
    pipe: str  # "D" | "S" | "C"
    operands: tuple[Operand, ...]
    types: tuple[str, ...] = ()  # allowed element-type suffixes; () = none taken
    mods: tuple[str, ...] = ()  # allowed modifier suffixes (first is the default when omitted)
    types2: tuple[str, ...] = ()  # DCVT: allowed source types (suffix order: .dst.src)
    latency: int = 1  # scheduler latency class in SIWs
    summary: str = ""
    semantics: str = ""
    branch: bool = False  # may change the pc
    blocking: bool = False  # may block the sentron (C pipe)
    writes_flags: bool = False
    reads_flags: bool = False
    vector_only: bool = False
    imm_range: tuple[tuple[int, int, int], ...] = ()  # (operand index, lo, hi) for plain immediates
    pow2: tuple[int, ...] = ()  # operand indexes whose immediate must be a power of two
    mem_len: bool = False  # takes an optional trailing byte count (1..64) for a contiguous vector access
    defers_nan: bool = False  # f32 vector result may stay raw (NaN payload) until observed: JIT defers
    edits_scrolls: bool = False  # changes the scroll table (allocation, freeing, tier moves)
    no_memory: bool = False  # an S-pipe op that reads and writes registers only (no scroll access)

    @property
    def is_nop(self) -> bool:
        return self.name in NOP_NAMES

    def __reduce__(self):
        # pickled by name: an unpickled program (a compile cache, a compile in a child process) holds
        # the table's own Op objects, as every decoded or assembled program does
        return (_op_named, (self.name,))


def _op_named(name: str) -> Op:
    return BY_NAME[name]


def _op(name, code, pipe, ops="", **kw) -> Op:
    operands = tuple(Operand.parse(s) for s in ops.split()) if ops else ()
    return Op(name, code, pipe, operands, **kw)


NOP_NAMES = ("DNOP", "SNOP", "CNOP")

# fmt: off
OPS: tuple[Op, ...] = (
    # ------------------------------------------------------------------ D pipe: dense compute
    _op("DNOP", 0x00, "D", summary="no operation in the D pipe",
        semantics="Does nothing. An omitted D slot encodes as DNOP."),
    _op("DFMA", 0x01, "D", "w:rv r:rv r:rv r:rvi", types=ARITH, defers_nan=True, latency=4,
        summary="fused multiply-add d = a*b + c",
        semantics="f32: computed exactly and rounded once (round-to-nearest-even). Integers: wrapping."),
    _op("DADD", 0x02, "D", "w:rv r:rv r:rvi", types=ARITH, defers_nan=True, latency=1,
        summary="d = a + b", semantics="f32: IEEE-754 binary32, round-to-nearest-even. Integers wrap."),
    _op("DSUB", 0x03, "D", "w:rv r:rv r:rvi", types=ARITH, defers_nan=True, latency=1,
        summary="d = a - b", semantics="f32: IEEE-754, round-to-nearest-even. Integers wrap."),
    _op("DMUL", 0x04, "D", "w:rv r:rv r:rvi", types=ARITH, defers_nan=True, latency=3,
        summary="d = a * b", semantics="f32: IEEE-754, round-to-nearest-even. Integers: low bits, wrap."),
    _op("DCMP", 0x05, "D", "w:rv r:rv r:rvi", types=ARITH, mods=CMP_CONDS, latency=1, writes_flags=True,
        summary="compare: d = (a <cc> b)",
        semantics="Vector form: each lane becomes all-ones (-1) when true, 0 when false. Scalar form: d = 1 or 0 "
                  "and flags.cmp is set to the result. f32 compares are ordered: any NaN makes every "
                  "condition false except `ne`, which is true."),
    _op("DRED", 0x06, "D", "w:r r:v", types=ARITH, mods=RED_OPS, latency=4,
        summary="reduce the lanes of a vector into a scalar",
        semantics="Fixed pairwise order: with n lanes, lane i is combined with lane i+n/2 for n/2 = 32, 16, ... 1 "
                  "(each step rounded for f32), then lane 0 is the result. Integer sums wrap in the element "
                  "type; the result is sign-extended into the r register (f32: its bit pattern)."),
    _op("DSEL", 0x07, "D", "w:rv r:rv r:rv r:rvi", types=ALL_LANE, latency=1,
        summary="select: d = m ? a : b (per lane)",
        semantics="A lane (or the scalar) of the mask operand m that is nonzero selects a, else b."),
    _op("DMOV", 0x08, "D", "w:rv r:rvs", latency=1,
        summary="copy a register, load an immediate or read a special register",
        semantics="`DMOV rD, rS|vS` copies 64 bits / 512 bits. `DMOV rD, imm` loads a 64-bit immediate; "
                  "`DMOV rD, sid|scount|flags` reads a special register. Typed float immediates: "
                  "`DMOV.f32 r1, 1.5` loads the binary32 bit pattern (zero-extended).",
        types=("i64", "f32")),
    _op("DMIN", 0x09, "D", "w:rv r:rv r:rvi", types=ARITH, latency=1,
        summary="d = min(a, b)", semantics="f32: NaN if either is NaN; -0.0 is less than +0.0."),
    _op("DMAX", 0x0A, "D", "w:rv r:rv r:rvi", types=ARITH, latency=1,
        summary="d = max(a, b)", semantics="f32: NaN if either is NaN; +0.0 is greater than -0.0."),
    _op("DDIV", 0x0B, "D", "w:rv r:rv r:rvi", types=ARITH, defers_nan=True, latency=10,
        summary="d = a / b",
        semantics="f32: IEEE-754 division, round-to-nearest-even. Integers: truncate toward zero; "
                  "division by zero faults; MIN / -1 wraps to MIN."),
    _op("DSQRT", 0x0C, "D", "w:rv r:rv", types=("f32",), defers_nan=True, latency=10,
        summary="d = sqrt(a)", semantics="IEEE-754 square root, correctly rounded; sqrt(-x) = NaN, sqrt(-0) = -0."),
    _op("DAND", 0x0D, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="bitwise and",
        semantics="d = a & b"),
    _op("DOR", 0x0E, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="bitwise or",
        semantics="d = a | b"),
    _op("DXOR", 0x0F, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="bitwise xor",
        semantics="d = a ^ b"),
    _op("DSHL", 0x10, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="shift left",
        semantics="The count is read as unsigned; a count >= the element width gives 0."),
    _op("DSHR", 0x11, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="logical shift right",
        semantics="Zero fill; the count is read as unsigned; a count >= the element width gives 0."),
    _op("DSAR", 0x12, "D", "w:rv r:rv r:rvi", types=INT_TYPES, latency=1, summary="arithmetic shift right",
        semantics="Sign fill; a count >= the element width fills every bit with the sign."),
    _op("DCVT", 0x13, "D", "w:rv r:rv r:imm?", types=("f32", "i32", "i16", "i8", "bf16", "i64"),
        imm_range=((2, 0, 7),),
        types2=("f32", "i32", "i16", "i8", "bf16", "i64"), latency=3,
        summary="convert element type: DCVT.dst.src d, a[, part]",
        semantics="f32->int: round to nearest even; NaN or out of range gives the integer MIN. int->f32: "
                  "round to nearest even. f32->bf16: round to nearest even, NaN becomes the quiet NaN 0x7FC0. "
                  "bf16->f32: exact. Integer narrowing saturates; widening sign-extends. Vector form with "
                  "different widths converts n = 64 / max(width) lanes: a widening conversion reads source "
                  "lanes [part*n, part*n+n); a narrowing one writes destination lanes [part*n, part*n+n) and "
                  "keeps the other lanes of d. `part` defaults to 0."),
    _op("DBCAST", 0x14, "D", "w:v r:ri", types=ALL_LANE, latency=1, vector_only=True,
        summary="broadcast a scalar or immediate to every lane",
        semantics="Takes the low element-width bits of the scalar register (or the immediate, "
                  "rounded to the type) and writes it to every lane."),
    _op("DSHUF", 0x15, "D", "w:v r:v r:v", types=ALL_LANE, latency=3, vector_only=True,
        summary="permute lanes: d[i] = a[idx[i] mod lanes]",
        semantics="The index vector is read as unsigned integers of the element width."),
    _op("DTERNARY", 0x16, "D", "rw:v r:v r:v r:imm?", latency=4, vector_only=True, imm_range=((3, 0, 3),),
        summary="ternary dot-accumulate: i32x16 += i8x64 * 2-bit ternary codes",
        semantics="The weights are 64 2-bit codes taken from 128-bit quarter `q` (default 0) of the weight "
                  "register: code k sits at bits 2*(k%4) of byte q*16 + k//4, and its weight is code-1 "
                  "(codes 0,1,2 = -1,0,+1; code 3 is reserved and computes as +2). "
                  "d.i32[j] += sum over t<4 of a.i8[4j+t] * w[4j+t], wrapping."),
    _op("DDOT", 0x17, "D", "rw:v r:v r:v", types=("i8", "bf16"), latency=4, vector_only=True,
        summary="dot-accumulate pairs/quads into 32-bit lanes",
        semantics="i8: d.i32[j] += sum over t<4 of a.i8[4j+t]*b.i8[4j+t] (wrapping). bf16: d.f32[j] = "
                  "(d[j] + a[2j]*b[2j]) + a[2j+1]*b[2j+1], every product and sum rounded to f32."),
    _op("DTDOT", 0x1D, "D", "rw:v r:v r:v r:imm?", latency=4, vector_only=True, imm_range=((3, 0, 3),),
        summary="ternary code dot-accumulate, interleaved layout: i32x16 += i8x64 * 2-bit codes (raw)",
        semantics="The 64 codes of plane `q` (default 0) are interleaved: code k sits at bits 2*q of byte k of "
                  "the weight register, so every byte holds one code of each of the four planes. "
                  "d.i32[j] += sum over t<4 of a.i8[4j+t] * c[4j+t] with the raw code c in 0..3, wrapping. "
                  "The weight is c-1: the program subtracts sum(a) once per dot product instead of per op "
                  "(phextcc's tmatmul does, see docs/phx.md), which leaves a shift, a mask and one "
                  "vpdpbusd per op on AVX-512 VNNI."),
    _op("DJMP", 0x18, "D", "r:label", branch=True, summary="jump to a label",
        semantics="The next SIW executed is the one at the label."),
    _op("DBRT", 0x19, "D", "r:label", branch=True, reads_flags=True,
        summary="branch if flags.cmp is set", semantics="Jumps when the last scalar DCMP was true."),
    _op("DBRF", 0x1A, "D", "r:label", branch=True, reads_flags=True,
        summary="branch if flags.cmp is clear", semantics="Jumps when the last scalar DCMP was false."),
    _op("DLOOP", 0x1B, "D", "rw:r r:label", branch=True, summary="counted loop: r -= 1; jump if r != 0",
        semantics="Decrements the counter (64-bit wrap) and jumps to the label when the result is nonzero."),
    _op("DHALT", 0x1C, "D", summary="stop this sentron",
        semantics="The sentron finishes after this SIW (its other slots still execute). Running off the end "
                  "of the code also halts."),
    # ------------------------------------------------------------------ S pipe: phext memory
    _op("SNOP", 0x40, "S", summary="no operation in the S pipe",
        semantics="Does nothing. An omitted S slot encodes as SNOP."),
    _op("SGATHER", 0x41, "S", "w:rv r:mem", types=ALL_LANE, latency=4, mem_len=True,
        summary="load from a scroll: contiguous, strided or indexed",
        semantics="Scalar form: loads one element (sign-extended; f32/bf16 bit pattern zero-extended). Vector "
                  "form: `[p + off]` loads 64 bytes (or the optional byte count 1..64; other lanes are zeroed); "
                  "`[p + off : stride]` loads lane i from byte off + i*stride; `[p + off + vI]` (32- and 64-bit "
                  "elements only) loads lane i from byte off + vI.i32[i]*size. Every byte accessed is "
                  "bounds-checked."),
    _op("SSCATTR", 0x42, "S", "r:mem r:rv", types=ALL_LANE, latency=1, mem_len=True,
        summary="store to a scroll: contiguous, strided or indexed",
        semantics="The mirror of SGATHER. Indexed stores to the same element are applied in lane order, so "
                  "the highest lane wins."),
    _op("SINDEX", 0x43, "S", "w:p r:p r:imm r:ri", mods=INDEX_MODES, no_memory=True, latency=1, imm_range=((2, 0, 8),),
        summary="coordinate arithmetic along one dimension: SINDEX.mode pd, ps, dim, delta",
        semantics="dim 0..8 (library..scroll). add: part += delta, fault outside 1..999. wrap: modulo within "
                  "1..999. carry: odometer carry into the more significant parts. set: part = delta."),
    _op("SDEDUP", 0x44, "S", "w:v w:v w:r r:v", types=("i32",), no_memory=True, latency=6, vector_only=True,
        summary="unique indices + inverse map: SDEDUP u, inv, count, a",
        semantics="u holds the distinct lanes of a in order of first occurrence (remaining lanes 0), "
                  "inv[i] is the position of a[i] in u, count is the number of distinct values."),
    _op("SPREFCH", 0x45, "S", "r:p", latency=1,
        summary="move a scroll to the hot tier", semantics="Counts a prefetch; faults if the scroll does not exist."),
    _op("SFLUSH", 0x46, "S", "r:p", edits_scrolls=True, latency=1,
        summary="write a scroll back to its cold backing",
        semantics="Counts a flush and the bytes written back; faults if the scroll does not exist. Reads the "
                  "scroll for the data-race rule."),
    _op("SALLOC", 0x47, "S", "r:p r:ri r:imm?", edits_scrolls=True, latency=1, imm_range=((1, 0, 2**31 - 1), (2, 1, 4096)), pow2=(2,),
        summary="allocate a zeroed scroll: SALLOC p, size[, align]",
        semantics="align is a power of two 1..4096 (default 64). Allocating at a live coordinate faults. "
                  "Writes the coordinate for the data-race rule (after a free: ordered after that SFREE)."),
    _op("SFREE", 0x48, "S", "r:p", edits_scrolls=True, latency=1, summary="free a scroll",
        semantics="Freeing a scroll that is not allocated faults; later use of it faults. Writes the scroll "
                  "for the data-race rule: every earlier access by another sentron must be ordered before it."),
    _op("SCOORD", 0x49, "S", "w:p r:coord", no_memory=True, latency=1, summary="load a coordinate constant into a p register",
        semantics="`home` loads this sentron's home coordinate."),
    _op("SPART", 0x4A, "S", "w:r r:p r:imm", no_memory=True, latency=1, imm_range=((2, 0, 8),), summary="read one part (dim 0..8) of a coordinate",
        semantics="r = part (1..999)."),
    # ------------------------------------------------------------------ C pipe: coordination
    _op("CNOP", 0x80, "C", summary="no operation in the C pipe",
        semantics="Does nothing. An omitted C slot encodes as CNOP."),
    _op("CPACK", 0x81, "C", "w:m r:rv", types=ALL_LANE, latency=1,
        summary="build a message from a register",
        semantics="Payload = the element (scalar form) or the 64 bytes (vector form) of the source."),
    _op("CUNPACK", 0x82, "C", "w:rv r:m", types=ALL_LANE, latency=1,
        summary="read a message payload into a register",
        semantics="Missing payload bytes read as zero; scalars are sign-extended like SGATHER."),
    _op("CSEND", 0x83, "C", "r:m r:ri", latency=2, blocking=True,
        summary="send a message to a sentron",
        semantics="Queues are per (sender, receiver) pair, FIFO, capacity 16 messages; a full queue blocks. "
                  "Sending to a sentron id outside 0..N-1 faults."),
    _op("CRECV", 0x84, "C", "w:m r:ri w:r?", latency=2, blocking=True,
        summary="receive a message (blocking): CRECV m, src|-1[, rSender]",
        semantics="src -1 receives from any sender (lowest id with a message first); the sender id is written "
                  "to the optional register."),
    _op("CBAR", 0x85, "C", "r:group", latency=2, blocking=True,
        summary="barrier over a group", semantics="Blocks until every member of the group has arrived."),
    _op("CFENCE", 0x86, "C", latency=1, summary="order this sentron's memory effects",
        semantics="Writes before the fence are visible to any sentron that synchronises with this one after it."),
    _op("CREDUCE", 0x87, "C", "w:rv r:rv r:group", types=("f32", "i32", "i64"), mods=RED_OPS, latency=4,
        blocking=True, summary="all-reduce over a group",
        semantics="Combines the members' values in ascending sentron-id order, left to right (f32 rounded "
                  "at each step, integers wrap); every member receives the same bits."),
    _op("CCAST", 0x88, "C", "w:rv r:rv r:ri r:group", types=ALL_LANE, latency=4, blocking=True,
        summary="broadcast from a root: CCAST d, src, root, group",
        semantics="Every member receives the root's value of src."),
    _op("CROUTE", 0x89, "C", "r:m r:p", latency=2, blocking=True,
        summary="send a message toward the sentron whose home coordinate is p",
        semantics="Forwarded hop by hop along the run's topology (deterministic minimal routing); the hop "
                  "count is recorded. The receiver sees it as a message from the original sender."),
)
# fmt: on

BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
BY_CODE: dict[int, Op] = {op.code: op for op in OPS}
NOP_FOR_PIPE = {"D": BY_NAME["DNOP"], "S": BY_NAME["SNOP"], "C": BY_NAME["CNOP"]}
PIPES = ("D", "S", "C")

assert len(BY_NAME) == len(OPS) and len(BY_CODE) == len(OPS), "duplicate op name or code"

V01_OPS = (
    "DFMA DADD DSUB DMUL DCMP DRED DSEL DMOV SGATHER SSCATTR SINDEX SDEDUP SPREFCH SFLUSH SALLOC SFREE "
    "CPACK CROUTE CSEND CRECV CBAR CFENCE CREDUCE CCAST".split()
)
assert all(n in BY_NAME for n in V01_OPS)


def split_mnemonic(op: Op, suffixes: list[str]) -> tuple[str | None, str | None, str | None, str | None]:
    """Split the dotted suffixes of a mnemonic into (mod, type, type2, error)."""
    mod = t = t2 = None
    rest = list(suffixes)
    if op.mods and rest and rest[0] in op.mods:
        mod = rest.pop(0)
    if op.types and rest:
        t = rest.pop(0)
        if t not in op.types:
            return None, None, None, f"{op.name} does not take type .{t}; allowed: {', '.join(op.types)}"
    if op.types2 and rest:
        t2 = rest.pop(0)
        if t2 not in op.types2:
            return (
                None,
                None,
                None,
                f"{op.name} source type .{t2} not allowed; allowed: {', '.join(op.types2)}",
            )
    if rest:
        what = "modifier or type" if (op.mods or op.types) else "suffix"
        allowed = [*op.mods, *op.types]
        extra = f"; allowed: {', '.join(allowed)}" if allowed else " (it takes none)"
        return None, None, None, f"unexpected {what} .{rest[0]} for {op.name}{extra}"
    if op.mods and mod is None:
        mod = op.mods[0]
    if op.types2 and t2 is None:
        return None, None, None, f"{op.name} needs .dst.src types, e.g. {op.name}.f32.i32"
    return mod, t, t2, None


def mem_form_error(t: str | None, mode: int) -> str | None:
    """Indexed gathers/scatters (mode 2) take i32 indexes, so their elements are 32 or 64 bits wide."""
    if mode == 2 and t is not None and TYPES[t][1] < 4:
        return f"indexed memory operands need 32- or 64-bit elements (f32, i32, i64), not {t}"
    return None


def default_type(op: Op) -> str | None:
    """Type used when a typed op is written without a suffix (i64 for integer-capable ops)."""
    if not op.types:
        return None
    return "i64" if "i64" in op.types else op.types[0]
