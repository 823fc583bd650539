"""phextcc level-1 IR: svISA ops on unlimited virtual registers, linear code with labels.

Both front-end levels lower into this IR through :class:`Builder`: level-1 statements directly, level-2
tensor ops through the tiling code in ``tensors.py``. Virtual registers are not SSA: a register may be
written several times (loop counters, accumulators), so the allocator computes liveness on the CFG.

Memory accesses carry a :class:`MemInfo` (which scroll, which byte range, relative to which offset
register) so that the scheduler can prove that two accesses do not alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vtpu_cli.binary.program import MEM_CONTIG, Imm, Instr, Mem
from vtpu_cli.compiler import oprw
from vtpu_cli.core import coords
from vtpu_cli.isa.table import BY_NAME, Op, type_size


class VReg:
    """A virtual register of class r (scalar), v (vector), p (coordinate) or m (message)."""

    # start/end: the live interval the register allocator computes (-1 outside an allocation), phys/key:
    # the physical register it assigned and its scheduler key -- kept on the register instead of in
    # dicts keyed by it (the allocator's hottest loops; set by each allocation before they are read)
    __slots__ = ("cls", "id", "nospill", "hint", "start", "end", "phys", "key")

    def __init__(self, cls: str, id: int, hint: str = "", nospill: bool = False):
        self.cls = cls
        self.id = id
        self.hint = hint
        self.nospill = nospill
        self.start = -1
        self.end = -1

    def __repr__(self) -> str:
        return f"%{self.cls}{self.id}" + (f"<{self.hint}>" if self.hint else "")

    __str__ = __repr__


class Label:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


class VMem:
    """``[base + off]``, ``[base + off : stride]`` or ``[base + off + vI]`` on virtual registers.

    A ``__slots__`` value class (one per memory access; a frozen dataclass costs a dict per instance
    and ~0.5 us to build): equality and hash by value, as the dataclass it replaces; never mutated."""

    __slots__ = ("base", "off", "mode", "extra", "disp")

    def __init__(
        self,
        base: VReg,
        off: VReg | int,
        mode: int = MEM_CONTIG,
        extra: VReg | int | None = None,
        disp: int = 0,
    ):  # extra: contiguous: byte count; strided: stride; indexed: index vector
        self.base = base
        self.off = off
        self.mode = mode
        self.extra = extra
        self.disp = disp  # a register offset's displacement ([p + r + disp], see fold_addresses)

    def _key(self) -> tuple:
        return (self.base, self.off, self.mode, self.extra, self.disp)

    def __eq__(self, other) -> bool:
        return other.__class__ is VMem and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"VMem(base={self.base!r}, off={self.off!r}, mode={self.mode!r}, extra={self.extra!r}, "
            f"disp={self.disp!r})"
        )


class MemInfo:
    """What an S-pipe access touches: scroll key, write?, byte range [lo, hi) relative to ``rel``.

    ``lo is None`` means "anywhere in the scroll"; ``scroll == '*'`` means "any scroll" (and also
    orders against fences and collectives). ``rel``: the offset register (VReg before allocation, a
    scheduler key after), None = absolute. A ``__slots__`` class like :class:`VMem` (equal by value,
    unhashable, as the dataclass it replaces)."""

    __slots__ = ("scroll", "write", "lo", "hi", "rel")

    def __init__(
        self, scroll: str, write: bool, lo: int | None = None, hi: int | None = None, rel: object = None
    ):
        self.scroll = scroll
        self.write = write
        self.lo = lo
        self.hi = hi
        self.rel = rel

    def __eq__(self, other) -> bool:
        return other.__class__ is MemInfo and (self.scroll, self.write, self.lo, self.hi, self.rel) == (
            other.scroll,
            other.write,
            other.lo,
            other.hi,
            other.rel,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MemInfo(scroll={self.scroll!r}, write={self.write!r}, lo={self.lo!r}, hi={self.hi!r}, "
            f"rel={self.rel!r})"
        )


_new = object.__new__


def _instr(op, mod, type, type2, args) -> Instr:
    """``Instr(op, mod, type, type2, args)`` without the frozen dataclass ``__init__`` (which sets each
    field through ``object.__setattr__``: 0.8 us, the largest per-instruction cost of building the
    physical code); the instance is identical (tests/test_phx_speed.py checks equality and hash)."""
    o = _new(Instr)
    _SET_OP(o, op)
    _SET_MOD(o, mod)
    _SET_TYPE(o, type)
    _SET_TYPE2(o, type2)
    _SET_ARGS(o, args)
    return o


# Instr is slotted: its fields are set through the slots' own descriptors (what its frozen __init__
# reaches through object.__setattr__, without the attribute lookup)
_SET_OP, _SET_MOD, _SET_TYPE, _SET_TYPE2, _SET_ARGS = (
    Instr.__dict__[f].__set__ for f in ("op", "mod", "type", "type2", "args")
)


# Mem and Imm are slotted too: built the same way
_SET_BASE, _SET_OFF, _SET_MODE, _SET_EXTRA, _SET_DISP = (
    Mem.__dict__[f].__set__ for f in ("base", "off", "mode", "extra", "disp")
)
_SET_VALUE = Imm.__dict__["value"].__set__


def _mem(base: int, off, mode: int, extra, disp: int = 0) -> Mem:
    """``Mem(base, off, mode, extra, disp)``, built like :func:`_instr`."""
    o = _new(Mem)
    _SET_BASE(o, base)
    _SET_OFF(o, off)
    _SET_MODE(o, mode)
    _SET_EXTRA(o, extra)
    _SET_DISP(o, disp)
    return o


def _imm(value: int, cache: dict) -> Imm:
    """A shared ``Imm(value)`` (immutable; built like :func:`_instr`)."""
    o = cache.get(value)
    if o is None:
        o = cache[value] = _new(Imm)
        _SET_VALUE(o, value)
    return o


_IMMS: dict[int, Imm] = {}  # int -> its shared Imm (module-wide: immediates repeat across compiles)


def imm(value: int) -> Imm:
    """``Imm(value)``: for an int, one shared instance per value (Imm is immutable, and its frozen
    dataclass ``__init__`` costs ~0.5 us; the lowering builds one per address displacement, loop count,
    constant); anything else gets a new instance."""
    if value.__class__ is int:
        o = _IMMS.get(value)
        if o is None:
            if len(_IMMS) >= 1 << 16:  # (bounded: a long-running process compiles many programs)
                _IMMS.clear()
            o = _IMMS[value] = _new(Imm)
            _SET_VALUE(o, value)
        return o
    return Imm(value)


def _vmem(base: VReg, off: VReg | int, mode: int, extra: VReg | int | None, disp: int = 0) -> VMem:
    """``VMem(base, off, mode, extra, disp)`` without the ``__init__`` frame: one per memory access."""
    o = _new(VMem)
    o.base = base
    o.off = off
    o.mode = mode
    o.extra = extra
    o.disp = disp
    return o


def _meminfo(scroll: str, write: bool, lo: int | None, hi: int | None, rel: object) -> MemInfo:
    """``MemInfo(...)``, built like :func:`_vmem`."""
    o = _new(MemInfo)
    o.scroll = scroll
    o.write = write
    o.lo = lo
    o.hi = hi
    o.rel = rel
    return o


_ROLES: dict[str, tuple[tuple[bool, bool], ...]] = {}  # op name -> (reads, writes) per operand


def _roles(op: Op) -> tuple[tuple[bool, bool], ...]:
    r = _ROLES.get(op.name)
    if r is None:
        r = _ROLES[op.name] = tuple(("r" in spec.role, "w" in spec.role) for spec in op.operands)
    return r


_RW: dict[str, object] = {}  # op name -> args -> (read, written) virtual registers


def _sig_name(roles: tuple[tuple[bool, bool], ...]) -> str:
    """The generated function's name for a role signature: ``rw_`` + per operand r, w, rw or n."""
    return "rw_" + "_".join(("r" if r else "") + ("w" if w else "") or "n" for r, w in roles)


def _rw_source(roles: tuple[tuple[bool, bool], ...]) -> list[str]:
    """Source lines of the (read, written) function for one role signature: the operand loop of
    :meth:`VI._regs` unrolled (a register operand is read and/or written per its role, a memory operand
    reads its base, offset and extra registers, in operand order). The all-register fast path returns
    tuples (one allocation each where a list takes two; one pair per IR op), the general path lists;
    callers only iterate them."""
    m = len(roles)
    lines = [f"def {_sig_name(roles)}(args):"]
    if m:
        # fast path: every operand present and a plain virtual register (most arithmetic)
        names = [f"a{k}" for k in range(m)]
        rd = ", ".join(f"a{k}" for k, (r, _) in enumerate(roles) if r)
        wr = ", ".join(f"a{k}" for k, (_, w) in enumerate(roles) if w)
        lines += [
            f"    if len(args) == {m}:",
            f"        {', '.join(names)}{',' if m == 1 else ''} = args",
            f"        if {' and '.join(f'{a}.__class__ is VReg' for a in names)}:",
            f"            return ({rd}{',' if rd and ',' not in rd else ''}), ({wr}{',' if wr and ',' not in wr else ''})",
            # every operand present, some not a register (a memory operand, an immediate): the
            # operand loop unrolled on the unpacked operands
            "        reads = []",
            "        writes = []",
        ]
        for k, (rd, wr) in enumerate(roles):
            lines += [f"        c = a{k}.__class__", "        if c is VReg:"]
            if rd:
                lines.append(f"            reads.append(a{k})")
            if wr:
                lines.append(f"            writes.append(a{k})")
            if not (rd or wr):
                lines.append("            pass")
            lines += [
                "        elif c is VMem:",
                f"            reads.append(a{k}.base)",
                f"            if a{k}.off.__class__ is VReg:",
                f"                reads.append(a{k}.off)",
                f"            if a{k}.extra.__class__ is VReg:",
                f"                reads.append(a{k}.extra)",
            ]
        lines.append("        return reads, writes")
    lines += ["    reads = []", "    writes = []", "    n = len(args)"]
    for k, (rd, wr) in enumerate(roles):
        lines += [
            f"    if n > {k}:",
            f"        a = args[{k}]",
            "        c = a.__class__",
            "        if c is VReg:",
        ]
        if rd:
            lines.append("            reads.append(a)")
        if wr:
            lines.append("            writes.append(a)")
        if not (rd or wr):
            lines.append("            pass")
        lines += [
            "        elif c is VMem:",
            "            reads.append(a.base)",
            "            if a.off.__class__ is VReg:",
            "                reads.append(a.off)",
            "            if a.extra.__class__ is VReg:",
            "                reads.append(a.extra)",
        ]
    lines.append("    return reads, writes")
    return lines


def rw_module_text() -> str:
    """``compiler/oprw.py``: the (read, written) functions of every role signature in the op table,
    generated ahead of time -- generating them at run time (``exec``) cost ~0.25 ms per op, 5 ms of
    a model compile's 33 in a fresh process. ``tests/test_phx_speed.py`` checks the file is current."""
    from vtpu_cli.isa.table import OPS

    sigs = sorted({_roles(op) for op in OPS})
    out = [
        '"""Generated by ``vtpu_cli.compiler.ir.rw_module_text`` from the op table: do not edit.',
        "",
        "Regenerate: python -c 'from vtpu_cli.compiler.ir import rw_module_text as t; print(t(), end=\"\")' \\",
        "    > vtpu_cli/compiler/oprw.py",
        '"""',
        "",
        "# ruff: noqa",
        "# fmt: off",
        "from __future__ import annotations",
        "",
        "",
        "def _bind(VReg, VMem):",
        '    """The functions, closed over the IR classes (the module imports nothing from ir.py)."""',
    ]
    for sig in sigs:
        out += ["    " + line for line in _rw_source(sig)]
        out.append("")
    out.append("    return {")
    out += [f"        {sig!r}: {_sig_name(sig)}," for sig in sigs]
    out += ["    }", ""]
    return "\n".join(out)


_BY_SIG: dict = {}  # role signature -> function (the generated module's, else generated here)


def _rw_func(op: Op):
    """The function computing (read, written) virtual registers from the ``args`` of ``op``, by its
    operand roles (:func:`_rw_source`). It is the hottest step of register allocation: one call per
    IR instruction."""
    f = _RW.get(op.name)
    if f is not None:
        return f
    roles = _roles(op)
    if not _BY_SIG:
        _BY_SIG.update(oprw._bind(VReg, VMem))
    f = _BY_SIG.get(roles)
    if f is None:  # an op table newer than oprw.py: generate the function now
        env = {"VReg": VReg, "VMem": VMem}
        exec("\n".join(_rw_source(roles)), env)  # noqa: S102 - generated from the op table, no user text
        f = _BY_SIG[roles] = env[_sig_name(roles)]
    _RW[op.name] = f
    return f


class VI:
    """One IR instruction (a plain ``__slots__`` class: millions are built at model scale)."""

    __slots__ = ("op", "mod", "type", "type2", "args", "mem", "line", "_rw")

    def __init__(
        self,
        op: Op,
        mod: str | None,
        type: str | None,
        type2: str | None,
        args: list,
        mem: MemInfo | None = None,
        line: int = 0,
        _rw: tuple | None = None,
    ):
        self.op = op
        self.mod = mod
        self.type = type
        self.type2 = type2
        self.args = args
        self.mem = mem
        self.line = line
        self._rw = _rw

    def __repr__(self) -> str:
        return f"VI({self})"

    def regs(self) -> tuple[Sequence[VReg], Sequence[VReg]]:
        """(read, written) virtual registers, tuples or lists (computed once: the registers in ``args``
        never change after construction -- transformations build new instructions)."""
        rw = self._rw
        if rw is None:
            rw = self._rw = (_RW.get(self.op.name) or _rw_func(self.op))(self.args)
        return rw

    def _regs(self) -> tuple[list[VReg], list[VReg]]:
        """The operand loop :func:`_rw_func` unrolls (kept as its specification and for tests)."""
        reads: list[VReg] = []
        writes: list[VReg] = []
        roles = _ROLES.get(self.op.name) or _roles(self.op)
        for (rd, wr), arg in zip(roles, self.args, strict=False):
            cls = arg.__class__
            if cls is VReg:
                if rd:
                    reads.append(arg)
                if wr:
                    writes.append(arg)
            elif cls is VMem:
                reads.append(arg.base)
                if arg.off.__class__ is VReg:
                    reads.append(arg.off)
                if arg.extra.__class__ is VReg:
                    reads.append(arg.extra)
        return reads, writes

    def __str__(self) -> str:
        name = self.op.name
        if self.mod is not None and (len(self.op.mods) > 1 or self.mod != self.op.mods[0]):
            name += "." + self.mod
        if self.type:
            name += "." + self.type
        if self.type2:
            name += "." + self.type2
        parts = []
        for spec, a in zip(self.op.operands, self.args, strict=False):
            if a is None:
                continue
            parts.append(_fmt_arg(spec.kind, a))
        text = f"{name} {', '.join(parts)}" if parts else name
        if self.mem is not None:
            m = self.mem
            rng = "*" if m.lo is None else f"{m.lo}..{m.hi}"
            text += f"    ; {'st' if m.write else 'ld'} {m.scroll}[{rng}{'+' + str(m.rel) if m.rel else ''}]"
        return text


def _fmt_arg(kind: str, a) -> str:
    if isinstance(a, VMem):
        s = f"[{a.base} + {a.off}"
        if a.disp:
            s += f" + {a.disp}" if a.disp > 0 else f" - {-a.disp}"
        if a.mode == 1:
            s += f" : {a.extra}"
        elif a.mode == 2:
            s += f" + {a.extra}"
        s += "]"
        if a.mode == 0 and a.extra is not None:
            s += f", {a.extra}"
        return s
    if isinstance(a, Imm):
        if kind == "coord":
            return "home" if a.value == -1 else coords.format_packed(a.value)
        return str(a.value)
    return str(a)


@dataclass
class Scroll:
    """A tensor's storage: a fixed coordinate (shared) or a private per-sentron scratch scroll."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    coord: int | None = None  # packed, for shared scrolls
    private: tuple[int, int] | None = None  # (library, shelf) relative to the sentron's home
    role: str = "tensor"
    data: bytes | None = None
    layers: int = 1  # a stack of per-layer scrolls: layer l at coord with the scroll part + l
    layer: object = None  # a view of one layer: int or the VReg holding the layer index
    by_sentron: bool = False  # a stack of one layer per sentron (exchange scrolls): sentron s uses layer s
    alias: str | None = None  # a view: the key of the scroll it views (for alias analysis)
    view_of: str | None = None  # an offset view (slice/reshape): the scroll whose coordinate it uses
    offset: int | VReg | None = None  # ... and its first byte there (a constant or a runtime register)
    # a column slice of several rows read in place: bytes from one of its rows to the next (its rows are
    # not contiguous); only element-wise ops are handed such a view (views.resolve_args)
    pitch: int | None = None
    # a transposed view read in place (``matmul(transpose(a), w)``'s x): bytes from one element of a row
    # to the next (``pitch`` is then 4: consecutive rows are consecutive columns of the base)
    estride: int | None = None


def private_coord(sentron: int, library: int, shelf: int) -> int:
    """Where sentron ``sentron``'s private scroll (library, shelf) lives: its home coordinate with
    the library and shelf parts set (what SCOORD home + SINDEX.set compute at run time). Here, below
    the lowering and the driver, so both can use it without importing each other."""
    parts = list(coords.unpack(coords.home_packed(sentron)).parts)
    parts[0], parts[1] = library, shelf
    return coords.pack_parts(parts)


P_HOISTED = 5  # coordinate registers hoisted to a region's start; further scrolls are defined at use


class CompileError(Exception):
    """An internal limit reached while compiling (reported as a diagnostic by the driver, at ``line``
    when known: the source line of the first instruction involved)."""

    def __init__(self, message: str, line: int = 0, vreg: VReg | None = None):
        super().__init__(message)
        self.line = line
        self.vreg = vreg


@dataclass
class Builder:
    """Emits level-1 IR. One builder per compilation; ``region`` scopes coordinate registers."""

    opt: int = 2
    sentrons: int = 1
    code: list = field(default_factory=list)
    nregs: int = 0
    nlabels: int = 0
    line: int = 0
    scrolls: dict[str, Scroll] = field(default_factory=dict)
    _pcache: dict = field(default_factory=dict)
    _region_start: int = 0
    _region_defs: list = field(default_factory=list)
    loops: int = 0
    pipelined: int = 0
    unrolled: int = 0

    # ---------------------------------------------------------------- registers and labels
    def new(self, cls: str, hint: str = "", nospill: bool = False) -> VReg:
        self.nregs += 1
        v = _new(VReg)  # VReg(cls, id, hint, nospill) without the __init__ frame: one per IR value
        v.cls = cls
        v.id = self.nregs
        v.hint = hint
        v.nospill = nospill
        v.start = -1
        v.end = -1
        return v

    def label(self, hint: str = "L") -> Label:
        self.nlabels += 1
        return Label(f".{hint}{self.nlabels}")

    def place(self, lab: Label) -> None:
        self.code.append(lab)

    # ---------------------------------------------------------------- emission
    def emit(
        self,
        name: str,
        *args,
        type: str | None = None,
        mod: str | None = None,
        type2: str | None = None,
        mem: MemInfo | None = None,
    ) -> VI:
        op = BY_NAME[name]
        if op.mods and mod is None:
            mod = op.mods[0]
        if mem is not None:
            sc = self.scrolls.get(mem.scroll)
            if sc is not None and sc.alias is not None:  # views alias their base tensor
                if sc.offset is not None:
                    args, mem = self._shift(sc.offset, args, mem)
                mem = MemInfo(sc.alias, mem.write, mem.lo, mem.hi, mem.rel)
        ins = _new(VI)  # VI(op, mod, type, type2, list(args), mem, line) without the __init__ frame
        ins.op = op
        ins.mod = mod
        ins.type = type
        ins.type2 = type2
        ins.args = list(args)
        ins.mem = mem
        ins.line = self.line
        ins._rw = None
        self.code.append(ins)
        return ins

    def _shift(self, o: int | VReg, args: tuple, mem: MemInfo) -> tuple[tuple, MemInfo]:
        """Move an access of an offset view (slice, reshape) to its base scroll: the view's first byte
        ``o`` is added to the address (an immediate when both are constants, else one ``DADD``), and the
        alias range is kept exact where it can be (relative to the same register)."""
        if isinstance(o, int) and o == 0:
            return args, mem
        i = next(k for k, a in enumerate(args) if isinstance(a, VMem))
        vm = args[i]
        lo, hi, rel = mem.lo, mem.hi, mem.rel
        if isinstance(o, int):
            if isinstance(vm.off, int):
                off = vm.off + o
            else:
                off = self.new("r", "addr")
                self.emit("DADD", off, vm.off, imm(o), type="i64")
            if lo is not None:
                lo, hi = lo + o, hi + o
        elif isinstance(vm.off, int):  # a runtime view start: ranges relative to it
            if vm.off == 0:
                off = o
            else:
                off = self.new("r", "addr")
                self.emit("DADD", off, o, imm(vm.off), type="i64")
            if rel is None:
                rel = o
            else:  # pragma: no cover - an immediate offset never carries a relative register
                lo = hi = rel = None
        else:
            off = self.new("r", "addr")
            self.emit("DADD", off, vm.off, o, type="i64")
            rel = off if rel is vm.off else None
            if rel is None:
                lo = hi = None
        args = (*args[:i], VMem(vm.base, off, vm.mode, vm.extra, vm.disp), *args[i + 1 :])
        return args, MemInfo(mem.scroll, mem.write, lo, hi, rel)

    # ---------------------------------------------------------------- regions and coordinates
    def begin_region(self) -> None:
        self._pcache = {}
        self._region_start = len(self.code)
        self._region_defs = []

    def push_region(self) -> tuple:
        """Open a nested region (a tensor statement inside a branch or loop): its coordinate registers
        are defined at its own start, so they are not all live across the enclosing statement."""
        saved = (self._pcache, self._region_start, self._region_defs)
        self.begin_region()
        return saved

    def pop_region(self, saved: tuple) -> None:
        self.end_region()
        self._pcache, start, self._region_defs = saved
        self._region_start = start

    def end_region(self) -> None:
        if self._region_defs:
            self.code[self._region_start : self._region_start] = self._region_defs
        self._pcache = {}
        self._region_defs = []
        self._region_start = len(self.code)

    def base(self, scroll: str) -> VReg:
        """A p register holding the coordinate of ``scroll``, defined at the start of the region."""
        p = self._pcache.get(scroll)
        if p is not None:
            return p
        sc = self.scrolls[scroll]
        if sc.view_of is not None:  # an offset view addresses its base scroll's coordinate
            return self.base(sc.view_of)
        p = self.new("p", scroll)
        defs = []
        if isinstance(sc.layer, VReg):  # coordinate arithmetic: the layer index moves the scroll part
            defs.append(VI(BY_NAME["SCOORD"], None, None, None, [p, imm(sc.coord)], None, self.line))
            defs.append(VI(BY_NAME["SINDEX"], "add", None, None, [p, p, imm(8), sc.layer], None, self.line))
        elif sc.private is None:
            defs.append(VI(BY_NAME["SCOORD"], None, None, None, [p, imm(sc.coord)], None, self.line))
        else:
            lib, shelf = sc.private
            defs.append(VI(BY_NAME["SCOORD"], None, None, None, [p, imm(-1)], None, self.line))
            defs.append(VI(BY_NAME["SINDEX"], "set", None, None, [p, p, imm(0), imm(lib)], None, self.line))
            defs.append(VI(BY_NAME["SINDEX"], "set", None, None, [p, p, imm(1), imm(shelf)], None, self.line))
        if isinstance(sc.layer, VReg):
            self.code.extend(defs)  # at the use site: the index is computed by the statement itself
        elif len(self._pcache) >= P_HOISTED:
            # a statement touching many scrolls: define this one at its use, uncached (p0..p7 would
            # not hold every coordinate live across the whole statement)
            self.code.extend(defs)
            return p
        else:
            self._region_defs.extend(defs)
        self._pcache[scroll] = p
        return p

    # ---------------------------------------------------------------- memory helpers
    def load(
        self, t: str, dst: VReg, scroll: str, off: int, nbytes: int | None = None, rel: VReg | None = None
    ) -> VReg:
        """Contiguous load of ``nbytes`` (default: one element / 64 bytes) at ``off`` (+ ``rel``)."""
        if off.__class__ is VReg:
            off, rel = 0, off
        p = self.base(scroll)
        full = 64 if dst.cls == "v" else type_size(t)
        n = full if nbytes is None else nbytes
        extra = None if (dst.cls == "r" or n == 64) else n
        if rel is not None:
            if off:
                raise CompileError(
                    "a load takes an immediate or a register offset (addrfold.py adds displacements)"
                )
            mem = _vmem(p, rel, MEM_CONTIG, extra)
            info = _meminfo(scroll, False, 0, n, rel)
        else:
            mem = _vmem(p, off, MEM_CONTIG, extra)
            info = _meminfo(scroll, False, off, off + n, None)
        self.emit("SGATHER", dst, mem, type=t, mem=info)
        return dst

    def store(
        self, t: str, src: VReg, scroll: str, off: int, nbytes: int | None = None, rel: VReg | None = None
    ) -> None:
        if off.__class__ is VReg:
            off, rel = 0, off
        p = self.base(scroll)
        full = 64 if src.cls == "v" else type_size(t)
        n = full if nbytes is None else nbytes
        extra = None if (src.cls == "r" or n == 64) else n
        if rel is not None:
            mem = _vmem(p, rel, MEM_CONTIG, extra)
            info = _meminfo(scroll, True, 0, n, rel)
        else:
            mem = _vmem(p, off, MEM_CONTIG, extra)
            info = _meminfo(scroll, True, off, off + n, None)
        self.emit("SSCATTR", mem, src, type=t, mem=info)

    def bcast_load(self, t: str, dst: VReg, scroll: str, off: int) -> VReg:
        """Broadcast one element into every lane with a stride-0 gather (S pipe only)."""
        p = self.base(scroll)
        info = _meminfo(scroll, False, off, off + type_size(t), None)
        self.emit("SGATHER", dst, _vmem(p, off, 1, 0), type=t, mem=info)
        return dst

    # ---------------------------------------------------------------- loops
    def counted_loop(self, count: int | VReg, body, hint: str = "loop") -> None:
        """``body()`` executed ``count`` times (count >= 1) with DLOOP; a register count is consumed."""
        if isinstance(count, int):
            if count <= 0:
                return
            cnt = self.new("r", "count", nospill=True)
            self.emit("DMOV", cnt, imm(count))
        else:
            cnt = count
            cnt.nospill = True
        top = self.label(hint)
        self.place(top)
        self.loops += 1
        body()
        self.emit("DLOOP", cnt, top)


def dump(code: list) -> str:
    """The IR as text (``--emit ir``)."""
    out = []
    for it in code:
        if isinstance(it, Label):
            out.append(f"{it.name}:")
        else:
            out.append(f"    {it}")
    return "\n".join(out) + "\n"
