"""The in-memory program: what the assembler produces, the .siw codec stores and the engines run."""

from __future__ import annotations

from dataclasses import dataclass, field

from vtpu_cli.isa.table import NOP_FOR_PIPE, PIPES, Op


@dataclass(frozen=True, slots=True)
class Reg:
    cls: str  # "r" | "v" | "p" | "m" | "s" (special: 0 sid, 1 scount, 2 flags)
    idx: int

    def __str__(self) -> str:
        if self.cls == "s":
            from vtpu_cli.isa.table import SPECIAL_REGS

            return SPECIAL_REGS[self.idx]
        return f"{self.cls}{self.idx}"


@dataclass(frozen=True, slots=True)
class Imm:
    """An immediate: integers as values, floats as their bit pattern, labels as SIW indexes,
    coordinates as packed 128-bit values (or HOME_COORD), groups as group ids. Operands are slotted
    like :class:`Instr` (no instance dict)."""

    value: int


MEM_CONTIG, MEM_STRIDED, MEM_INDEXED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Mem:
    base: int  # p register index
    off: Reg | Imm  # r register or immediate byte offset
    mode: int = MEM_CONTIG
    extra: Reg | Imm | None = None  # contiguous: byte count (Imm); strided: stride; indexed: v register
    # a register offset's displacement: the access starts at byte r + disp (i64, wrapping); 0 for an
    # immediate offset (which is the displacement itself)
    disp: int = 0


Arg = Reg | Imm | Mem | None


@dataclass(frozen=True, slots=True)
class Instr:
    """One instruction. Slotted: no per-instance dict (there are millions of these in a model compile,
    and an instance dict's values block is what the collector found freed in the crash that
    docs/jit.md describes)."""

    op: Op
    mod: str | None = None
    type: str | None = None
    type2: str | None = None
    args: tuple[Arg, ...] = ()

    @property
    def is_nop(self) -> bool:
        return self.op.is_nop

    def mnemonic(self) -> str:
        parts = [self.op.name]
        if self.mod is not None and (len(self.op.mods) > 1 or self.mod != self.op.mods[0]):
            parts.append(self.mod)
        if self.type is not None:
            parts.append(self.type)
        if self.type2 is not None:
            parts.append(self.type2)
        return ".".join(parts)

    def regs(self) -> tuple[set, set]:
        """(read, written) register keys like ("r", 3); used for hazard checks and scheduling."""
        reads: set = set()
        writes: set = set()
        for spec, arg in zip(self.op.operands, self.args, strict=False):
            if arg is None:
                continue
            if isinstance(arg, Mem):
                reads.add(("p", arg.base))
                for sub in (arg.off, arg.extra):
                    if isinstance(sub, Reg):
                        reads.add((sub.cls, sub.idx))
                continue
            if not isinstance(arg, Reg) or arg.cls == "s":
                continue
            key = (arg.cls, arg.idx)
            if "r" in spec.role:
                reads.add(key)
            if "w" in spec.role:
                writes.add(key)
        return reads, writes


def _fits_i32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


def imm_range_for(op_name: str, kind: str, t: str | None) -> tuple[int, int] | None:
    """The canonical range of a typed immediate, as the assembler writes it: integers wrapped to the
    signed range of the element type, f32/bf16 as unsigned bit patterns; None for other operand kinds
    (their ranges, if any, come from the op table's imm_range)."""
    from vtpu_cli.isa.table import type_size

    if kind not in ("rvi", "rvs", "ri"):
        return None
    if kind == "ri" and op_name != "DBCAST":
        t = "i64"
    t = t or "i64"
    if t in ("f32", "bf16"):
        return 0, (1 << (32 if t == "f32" else 16)) - 1
    bits = 8 * type_size(t)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_instr(ins: Instr) -> str | None:
    """Operand rules beyond the op table's operand kinds, shared by the assembler and the .siw loader so
    that there is one rule, not two, and an engine never sees an instruction it cannot run: immediate
    ranges and powers of two from the op table, one scalar/vector form per instruction, vector-only ops,
    memory operand forms and byte counts, DCVT parts. Returns the error message, or None."""
    from vtpu_cli.isa.table import VEC_BYTES, mem_form_error, type_size

    op = ins.op
    if len(ins.args) != len(op.operands):
        return f"{op.name} takes {len(op.operands)} operand field(s), not {len(ins.args)}"
    if op.types2 and (ins.type is None or ins.type2 is None):
        return f"{op.name} needs .dst.src element types"
    if op.types and ins.type is None and op.name != "DMOV":
        return f"{op.name} needs an element type"
    form = None
    for spec, a in zip(op.operands, ins.args, strict=True):
        if spec.kind in ("rv", "rvi", "rvs") and isinstance(a, Reg) and a.cls in ("r", "v"):
            if form is None:
                form = a.cls
            elif a.cls != form:
                return (
                    f"{op.name} mixes scalar and vector operands ({a} in a "
                    f"{'vector' if form == 'v' else 'scalar'} instruction)"
                )
        if isinstance(a, Imm) and spec.kind != "coord" and not -(1 << 63) <= a.value < (1 << 64):
            return f"immediate {a.value} of {op.name} does not fit 64 bits"
        rng = imm_range_for(op.name, spec.kind, ins.type) if isinstance(a, Imm) else None
        if rng is not None and not rng[0] <= a.value <= rng[1]:
            what = f"{ins.type} bit pattern" if ins.type in ("f32", "bf16") else "immediate"
            return f"{what} {a.value} of {op.name} is outside {rng[0]}..{rng[1]}"
    for idx, lo, hi in op.imm_range:
        a = ins.args[idx] if idx < len(ins.args) else None
        if isinstance(a, Imm) and not lo <= a.value <= hi:
            return f"operand {idx + 1} of {op.name} must be in {lo}..{hi}, found {a.value}"
    for idx in op.pow2:
        a = ins.args[idx] if idx < len(ins.args) else None
        if isinstance(a, Imm) and (a.value <= 0 or a.value & (a.value - 1)):
            return f"operand {idx + 1} of {op.name} must be a power of two, found {a.value}"
    if op.vector_only and form == "r":
        return f"{op.name} has only a vector form"
    if op.name == "DMOV" and form == "v" and isinstance(ins.args[1], Reg) and ins.args[1].cls == "s":
        return "a special register can only be moved into a scalar register"
    if op.name == "DMOV" and form == "v" and isinstance(ins.args[1], Imm):
        return "DMOV cannot load an immediate into a vector register"
    for a in ins.args:
        if isinstance(a, Mem):
            err = mem_form_error(ins.type, a.mode)
            if err:
                return err
            if isinstance(a.off, Imm) and not _fits_i32(a.off.value):
                return f"memory offset {a.off.value} does not fit 32 bits"
            if a.disp and not isinstance(a.off, Reg):
                return "a displacement needs a register offset ([p + rN + disp])"
            if not _fits_i32(a.disp):
                return f"memory displacement {a.disp} does not fit 32 bits"
            if isinstance(a.extra, Imm) and not -(1 << 63) <= a.extra.value < (1 << 64):
                return f"stride {a.extra.value} does not fit 64 bits"
            if form == "r" and (a.mode != MEM_CONTIG or a.extra is not None):
                return (
                    "a scalar load or store takes a plain [p + off] operand (no stride, index or byte count)"
                )
            if a.mode == MEM_CONTIG and isinstance(a.extra, Imm) and not 1 <= a.extra.value <= VEC_BYTES:
                return f"the byte count must be in 1..{VEC_BYTES}, not {a.extra.value}"
    if op.name == "DCVT":
        part = ins.args[2].value if len(ins.args) > 2 and isinstance(ins.args[2], Imm) else 0
        ds, ss = type_size(ins.type), type_size(ins.type2)
        if form == "r" or ds == ss:
            if part:
                return "DCVT takes a part only in the vector form between types of different widths"
        elif (part + 1) * (VEC_BYTES // max(ds, ss)) > VEC_BYTES // min(ds, ss):
            most = VEC_BYTES // min(ds, ss) // (VEC_BYTES // max(ds, ss)) - 1
            return f"DCVT.{ins.type}.{ins.type2} part {part} is out of range (0..{most})"
    return None


def siw_hazard(instrs: list[Instr] | tuple[Instr, ...]) -> tuple[tuple[str, int], Instr, Instr] | None:
    """The first intra-SIW hazard: a register one slot writes that another slot reads or writes.
    Returns (register key, first op, second op), or None. Shared by the assembler and the loader."""
    regs = [ins.regs() for ins in instrs]
    for i, a in enumerate(instrs):
        ra, wa = regs[i]
        for j in range(i + 1, len(instrs)):
            rb, wb = regs[j]
            clash = (wa & (rb | wb)) | (wb & ra)
            if clash:
                return sorted(clash)[0], a, instrs[j]
    return None


def nop(pipe: str) -> Instr:
    return Instr(NOP_FOR_PIPE[pipe])


SIW = tuple[Instr, Instr, Instr]


@dataclass
class DataScroll:
    """A preloaded scroll (from .data/.zero): coordinate, element type, shape and bytes."""

    coord: int  # packed coordinate
    dtype: str
    shape: tuple[int, ...]
    data: bytes
    zero: bool = False  # zero-filled (.zero): data holds no bytes, size is nbytes
    nbytes: int = 0

    @property
    def size(self) -> int:
        return self.nbytes if self.zero else len(self.data)


@dataclass(frozen=True)
class Output:
    """A designated result: a register (kind "reg") or a scroll (kind "scroll")."""

    kind: str
    reg: Reg | None = None
    coord: int = 0
    dtype: str = "i64"


TENSOR_ROLES = ("input", "weight", "output")
SENTRON_GROUP = "phx_sentrons"  # phextcc's group of members 0..N-1 when compiled for N > 1 sentrons


@dataclass(frozen=True)
class TensorDecl:
    """A tensor the source declared (``input``/``weight``/``output`` in ``.phx``): what the runner checks
    ``--mem`` data against and how ``--out`` names results. Layer l of a stack lives at ``coord + l``
    (the scroll part advanced by l); ``shape`` is one layer's logical shape (``t2`` weights are stored
    in phextcc's tile layout, so their scroll holds packed bytes, not ``shape`` elements)."""

    name: str
    role: str  # one of TENSOR_ROLES
    coord: int  # packed coordinate of layer 0
    dtype: str
    shape: tuple[int, ...]
    layers: int = 1


@dataclass
class Program:
    code: list[SIW] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    coord_names: dict[str, int] = field(default_factory=dict)
    groups: list[tuple[str, tuple[int, ...] | None]] = field(
        default_factory=list
    )  # name, members (None = all)
    data: list[DataScroll] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    source_file: str = ""
    lines: list[int] = field(default_factory=list)  # source line per SIW (empty = no line map)
    features: int = 0
    tensors: list[TensorDecl] = field(default_factory=list)  # declared tensors (the .siw tensors section)
    sentrons: int = 0  # the sentron count it was compiled for (0: not recorded, runs with any count)

    def compiled_sentrons(self) -> int:
        """The sentron count the program was compiled for: the tensors section's record, else the size of
        phextcc's ``phx_sentrons`` group (files older than the section); 0 when neither says."""
        if self.sentrons:
            return self.sentrons
        for name, members in self.groups:
            if name == SENTRON_GROUP and members:
                return len(members)
        return 0

    def tensor(self, name: str) -> TensorDecl | None:
        return next((t for t in self.tensors if t.name == name), None)

    def op_count(self) -> int:
        return sum(1 for siw in self.code for i in siw if not i.is_nop)


def siw_from_instrs(instrs: list[Instr]) -> SIW:
    slots = {p: nop(p) for p in PIPES}
    for ins in instrs:
        slots[ins.op.pipe] = ins
    return (slots["D"], slots["S"], slots["C"])
