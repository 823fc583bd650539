"""The portable ``.siw`` binary: encode a :class:`Program` to bytes and decode it back.

Layout (little-endian; full description in docs/siw-format.md):

    header   32 B   magic "VTPUSIW\\0", u16 format version, u16 ISA revision, u32 flags,
                    u64 required CPU features, u32 section count, u32 reserved
    table    24 B per section: u32 kind, u32 item count, u64 offset, u64 size
    sections CODE, COORDS, CONSTS, SYMBOLS, GROUPS, LINES, DATA, OUTPUTS (8-byte aligned), and
             TENSORS only when the program records declared tensors or a sentron count
    trailer  32 B   SHA-256 of everything before it

A code section holds fixed-width SIWs of 48 bytes: three 16-byte slots (D, S, C). A slot is
u8 opcode, u8 type | type2 << 4, u8 modifier index, u8 flags (bit 0: immA is a constant-pool index,
bit 1: immB likewise, bits 2-3: memory mode, bit 4: the memory operand's register offset has a
displacement, in the immediate after the operands' own), four operand bytes (class << 5 | index; classes
0 none, 1 r, 2 v, 3 p, 4 m, 5 special, 6 immA, 7 immB), i32 immA, i32 immB.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import weakref

from vtpu_cli.binary import limits
from vtpu_cli.binary.program import (
    MEM_CONTIG,
    MEM_INDEXED,
    MEM_STRIDED,
    TENSOR_ROLES,
    DataScroll,
    Imm,
    Instr,
    Mem,
    Output,
    Program,
    Reg,
    TensorDecl,
    check_instr,
)
from vtpu_cli.binary.validate import program_error
from vtpu_cli.core import coords
from vtpu_cli.core.errors import FormatError
from vtpu_cli.isa.table import (
    BY_CODE,
    HOME_COORD,
    PIPES,
    REG_CLASS_CODE,
    REG_COUNTS,
    SPECIAL_REGS,
    TYPE_BY_CODE,
    TYPES,
    Op,
    mem_form_error,
)

MAGIC = b"VTPUSIW\0"
FORMAT_VERSION = 1
SLOT_BYTES = 16
SIW_BYTES = 3 * SLOT_BYTES
HEADER = struct.Struct("<8sHHIQII")
SECTION = struct.Struct("<IIQQ")
SLOT = struct.Struct("<BBBB4Bii")
DIGEST_BYTES = 32

SEC_CODE, SEC_COORDS, SEC_CONSTS, SEC_SYMBOLS, SEC_GROUPS, SEC_LINES, SEC_DATA, SEC_OUTPUTS = range(1, 9)
SEC_TENSORS = 9  # optional: absent when a program records no tensors and no sentron count
SECTION_NAMES = {
    1: "code",
    2: "coords",
    3: "consts",
    4: "symbols",
    5: "groups",
    6: "lines",
    7: "data",
    8: "outputs",
    9: "tensors",
}
TENSOR_HEAD = struct.Struct("<II")  # sentron count compiled for (0: not recorded), reserved 0
TENSOR_ENTRY = struct.Struct("<BBBBII")  # role, type, ndim, reserved 0, coordinate index, layers
CLS_NONE, CLS_IMMA, CLS_IMMB = 0, 6, 7
FLAG_DISP = 0x10  # slot flag: [p + rN + disp] (svISA v2)
ISA_V1, ISA_V2 = 1, 2  # the header's ISA revision: v2 only for programs that use a displacement
CLASS_BY_CODE = {v: k for k, v in REG_CLASS_CODE.items()}
ALL_MEMBERS = 0xFFFFFFFF
FEATURE_BITS = ("avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16")


def _imm_kind_is_coord(kind: str) -> bool:
    return kind == "coord"


# ----------------------------------------------------------------------------- encoding
# Speed: encoding runs once per slot of every SIW (a compiled model has ~6k slots, half of them NOPs),
# in one pass: the constant pools (coordinates, constants outside i32) are collected while the slots
# are packed, and the few slots that refer to a pool entry are packed again once the pools are sorted.
# Per op, the operand kinds and the modifier indexes come from one table built from the op table
# (:func:`_op_enc`); a slot with no operands (the NOPs, fences) is packed once per (op, modifier,
# types) and shared; no closures are built per slot. tests/test_phx_speed.py checks the encoded bytes
# of 200+ compiled programs against hashes frozen before this change.
_OP_ENC: dict[str, tuple] = {}  # op name -> (code, operand kinds, {modifier: index}, is DMOV)


def _op_enc(op: Op) -> tuple:
    enc = _OP_ENC[op.name] = (
        op.code,
        tuple(spec.kind for spec in op.operands),
        {m: i for i, m in reversed(list(enumerate(op.mods)))},  # first index of a modifier, as .index()
        op.name == "DMOV",
    )
    return enc


class _Pools:
    """The sorted coordinate and constant pools and their indexes: the code's entries (collected by
    :func:`_encode_code`) plus the coordinates the program's tables name."""

    def __init__(self, program: Program, cs: set[int], ks: set[int]):
        cs = set(cs)
        cs.update(program.coord_names.values())
        cs.update(d.coord for d in program.data)
        cs.update(o.coord for o in program.outputs if o.kind == "scroll")
        cs.update(t.coord for t in program.tensors)
        self.coords = sorted(cs)
        self.consts = sorted(ks)
        self.coord_index = {c: i for i, c in enumerate(self.coords)}
        self.const_index = {k: i for i, k in enumerate(self.consts)}


class _Collect:
    """Stands in for the pools while the slots are first packed: records the entries a slot needs
    (index 0 in the meantime) and that the slot must be packed again."""

    def __init__(self):
        self.coords: set[int] = set()
        self.consts: set[int] = set()
        self.hit = False
        self.coord_index = self
        self.const_index = _CollectConst(self)

    def __getitem__(self, value: int) -> int:  # coordinate
        self.coords.add(value)
        self.hit = True
        return 0


class _CollectConst:
    def __init__(self, c: _Collect):
        self.c = c

    def __getitem__(self, value: int) -> int:
        self.c.consts.add(value)
        self.c.hit = True
        return 0


def _fits_i32(v: int) -> bool:
    return -(1 << 31) <= v < (1 << 31)


def _imm_field(value: int, coord: bool, imms: list, pools) -> tuple[int, int]:
    """An immediate operand: appended to ``imms`` (a coordinate as its pool index, a constant outside
    i32 as its pool index); returns (the operand byte, the flag bit of a pool constant)."""
    slot = len(imms)
    if slot >= 2:  # pragma: no cover - guarded by the op table
        raise AssertionError("more than two immediates")
    flag = 0
    if coord:
        if value != HOME_COORD:
            value = pools.coord_index[value]
    elif not -(1 << 31) <= value < (1 << 31):
        value = pools.const_index[value]
        flag = 1 << slot
    imms.append(value)
    return (CLS_IMMA if slot == 0 else CLS_IMMB) << 5, flag


def _encode_slot(ins: Instr, pools) -> bytes:
    op = ins.op
    enc = _OP_ENC.get(op.name) or _op_enc(op)
    code, kinds, mod_index, is_dmov = enc
    fields: list[int] = []
    imms: list[int] = []
    flags = 0
    disp = None
    rc = REG_CLASS_CODE
    for kind, arg in zip(kinds, ins.args, strict=False):
        c = arg.__class__
        if c is Reg:
            fields.append(rc[arg.cls] << 5 | arg.idx)
        elif arg is None:
            if kind == "mem":
                fields += (0, 0, 0)
            else:
                fields.append(0)
        elif c is Imm or (c is not Mem and isinstance(arg, Imm)):
            f, bit = _imm_field(arg.value, kind == "coord", imms, pools)
            fields.append(f)
            flags |= bit
        elif c is Mem or isinstance(arg, Mem):
            flags |= arg.mode << 2
            fields.append(rc["p"] << 5 | arg.base)
            for sub in (arg.off, arg.extra):
                if sub is None:
                    fields.append(0)
                elif isinstance(sub, Reg):
                    fields.append(rc[sub.cls] << 5 | sub.idx)
                else:
                    f, bit = _imm_field(sub.value, False, imms, pools)
                    fields.append(f)
                    flags |= bit
            if arg.disp:
                if not isinstance(arg.off, Reg) or not -(1 << 31) <= arg.disp < (1 << 31):
                    raise FormatError(
                        f"cannot encode {ins.op.name}: a displacement needs a register offset and 32 bits"
                    )
                flags |= FLAG_DISP
                disp = arg.disp
        elif isinstance(arg, Reg):  # pragma: no cover - no subclasses in the tree
            fields.append(rc[arg.cls] << 5 | arg.idx)
    n = len(fields)
    if n < 4:
        fields += (0,) * (4 - n)
    if disp is not None:  # after the operands' immediates (validated to fit i32: never a pool entry)
        if len(imms) >= 2:  # pragma: no cover - a memory operand leaves an immediate free
            raise AssertionError("no immediate left for the displacement")
        imms.append(disp)
    n = len(imms)
    if n < 2:
        imms += (0,) * (2 - n)
    t = ins.type
    if is_dmov:  # canonical: an immediate load is typed (i64 by default), a register copy is not
        t = (t or "i64") if isinstance(ins.args[1], Imm) else None
    t2 = ins.type2
    tcode = (TYPES[t][0] if t else 0) | ((TYPES[t2][0] if t2 else 0) << 4)
    m = ins.mod
    mod = 0 if m is None else mod_index[m] if m in mod_index else op.mods.index(m)
    return SLOT.pack(code, tcode, mod, flags, *fields, *imms)


def _encode_code(program: Program) -> tuple[bytes, _Pools]:
    """The code section and the pools, in one pass over the slots (see above)."""
    out: list[bytes] = []
    add = out.append
    bare: dict = {}
    col = _Collect()
    again: list[tuple[int, Instr]] = []  # slots naming a pool entry: packed again with the pools
    for siw in program.code:
        for ins in siw:
            if ins.args:
                add(_encode_slot(ins, col))
                if col.hit:
                    again.append((len(out) - 1, ins))
                    col.hit = False
                continue
            key = (ins.op.name, ins.mod, ins.type, ins.type2)
            b = bare.get(key)
            if b is None:
                b = bare[key] = _encode_slot(ins, col)
            add(b)
    pools = _Pools(program, col.coords, col.consts)
    for k, ins in again:
        out[k] = _encode_slot(ins, pools)
    return b"".join(out), pools


def _uses_disp(program: Program) -> bool:
    """Whether any memory operand has a displacement (the file then needs an svISA v2 reader)."""
    for siw in program.code:
        for ins in siw:
            if ins.op.pipe == "S":
                for a in ins.args:
                    if a.__class__ is Mem and a.disp:
                        return True
    return False


def _pstr(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def _encode_tensors(program: Program, pools: _Pools) -> bytes:
    """The tensors section: u32 sentrons, u32 0, then per tensor the fixed entry, ndim x u64 shape and
    the name (docs/siw-format.md)."""
    out = [TENSOR_HEAD.pack(program.sentrons, 0)]
    for t in program.tensors:
        out.append(
            TENSOR_ENTRY.pack(
                TENSOR_ROLES.index(t.role),
                TYPES[t.dtype][0],
                len(t.shape),
                0,
                pools.coord_index[t.coord],
                t.layers,
            )
        )
        out.append(struct.pack(f"<{len(t.shape)}Q", *t.shape))
        out.append(_pstr(t.name))
    return b"".join(out)


def _decode_tensors(prog: Program, count: int, blob: bytes, coord_at, name: str) -> None:
    """Read the tensors section into ``prog``; sizes come from the section's bytes (every entry takes at
    least 14 bytes, so a huge count fails on truncation, never by allocating). The values are checked by
    :func:`program_error` like every other table."""
    if count > len(blob) // (TENSOR_ENTRY.size + 2):
        raise FormatError(f"{name}: the tensors section lists {count} tensors in {len(blob)} bytes")
    r = _Reader(blob, "tensors")
    prog.sentrons, reserved = r.unpack(TENSOR_HEAD.format)
    if reserved:
        raise FormatError(f"{name}: corrupt tensors section (reserved field {reserved})")
    for i in range(count):
        role, tcode, ndim, zero, cidx, layers = r.unpack(TENSOR_ENTRY.format)
        dtype = TYPE_BY_CODE.get(tcode)
        if role >= len(TENSOR_ROLES) or dtype is None or zero:
            raise FormatError(f"{name}: corrupt tensor entry {i} (role {role}, type code {tcode})")
        shape = r.unpack(f"<{ndim}Q")
        tname = r.pstr()
        prog.tensors.append(
            TensorDecl(tname, TENSOR_ROLES[role], coord_at(cidx, f"tensor {tname!r}"), dtype, shape, layers)
        )


def _state(program: Program) -> tuple:
    """Everything a program's encoding depends on, by reference: SIWs, instructions, outputs and tensor
    declarations are immutable, so two states compare equal (identity first, element by element, in
    C) exactly when the encodings would; lists, dicts and data scrolls are copied or unpacked, since
    they can be changed in place."""
    return (
        tuple(program.code),
        tuple(program.groups),
        tuple(
            (d.coord, d.dtype, d.shape, d.data if type(d.data) is bytes else bytes(d.data), d.zero, d.nbytes)
            for d in program.data
        ),
        tuple(program.outputs),
        tuple(program.tensors),
        tuple(program.labels.items()),
        tuple(program.coord_names.items()),
        tuple(program.lines),
        program.source_file,
        program.features,
        program.sentrons,
    )


# id(program) -> (weak reference, state, SHA-256 of its encoding): encoding a model step takes ~9-12 ms,
# its state well under 1 ms (the JIT keys its code cache by the digest; the compile cache stores it)
_DIGESTS: dict[int, tuple[weakref.ref, tuple, bytes]] = {}
_DIGESTS_LOCK = threading.Lock()


def _store(program: Program, state: tuple, digest: bytes) -> None:
    k = id(program)
    with _DIGESTS_LOCK:
        _DIGESTS[k] = (weakref.ref(program, lambda _r, k=k: _DIGESTS.pop(k, None)), state, digest)


def encoding_digest(program: Program) -> bytes:
    """SHA-256 of ``encode(program)``, recomputed only when the program changed since it was last
    computed (or remembered, :func:`remember_digest`) for the same object."""
    state = _state(program)
    hit = _DIGESTS.get(id(program))
    if hit is not None and hit[0]() is program and hit[1] == state:
        return hit[2]
    digest = hashlib.sha256(encode(program)).digest()
    _store(program, state, digest)
    return digest


def remember_digest(program: Program, digest: bytes) -> None:
    """Record ``program``'s encoding digest, known from elsewhere (the compile cache keeps it with the
    program): :func:`encoding_digest` returns it while the program stays as it is now."""
    _store(program, _state(program), digest)


def encode(program: Program) -> bytes:
    """Serialise a program. Pools and tables are canonical (sorted), so equal programs encode equally."""
    code, pools = _encode_code(program)
    coords_b = b"".join(coords.to_bytes16(c) for c in pools.coords)
    consts_b = b"".join(struct.pack("<q", k if k < (1 << 63) else k - (1 << 64)) for k in pools.consts)
    syms = sorted(
        [(0, n, v) for n, v in program.labels.items()]
        + [(1, n, pools.coord_index[v]) for n, v in program.coord_names.items()]
    )
    syms_b = b"".join(struct.pack("<BI", k, v) + _pstr(n) for k, n, v in syms)
    groups_b = b""
    for name, members in program.groups:
        if members is None:
            groups_b += _pstr(name) + struct.pack("<I", ALL_MEMBERS)
        else:
            groups_b += (
                _pstr(name) + struct.pack("<I", len(members)) + struct.pack(f"<{len(members)}I", *members)
            )
    lines_b = b""
    if program.lines:
        lines_b = _pstr(program.source_file) + struct.pack(f"<{len(program.lines)}I", *program.lines)
    data_parts = []  # (joined once: appending each scroll's bytes to a growing bytes is quadratic)
    for d in program.data:
        head = struct.pack(
            "<IBBBB", pools.coord_index[d.coord], TYPES[d.dtype][0], int(d.zero), len(d.shape), 0
        )
        head += struct.pack(f"<{len(d.shape)}Q", *d.shape) + struct.pack("<Q", d.size)
        payload = b"" if d.zero else d.data
        data_parts += (head, payload, b"\0" * (-(len(head) + memoryview(payload).nbytes) % 8))
    data_b = b"".join(data_parts)
    outs_b = b""
    for o in program.outputs:
        if o.kind == "reg":
            outs_b += struct.pack("<BBBBI", 0, TYPES[o.dtype][0], REG_CLASS_CODE[o.reg.cls], o.reg.idx, 0)
        else:
            outs_b += struct.pack("<BBBBI", 1, TYPES[o.dtype][0], 0, 0, pools.coord_index[o.coord])
    sections = [
        (SEC_CODE, len(program.code), code),
        (SEC_COORDS, len(pools.coords), coords_b),
        (SEC_CONSTS, len(pools.consts), consts_b),
        (SEC_SYMBOLS, len(syms), syms_b),
        (SEC_GROUPS, len(program.groups), groups_b),
        (SEC_LINES, len(program.lines), lines_b),
        (SEC_DATA, len(program.data), data_b),
        (SEC_OUTPUTS, len(program.outputs), outs_b),
    ]
    if program.tensors or program.sentrons:
        sections.append((SEC_TENSORS, len(program.tensors), _encode_tensors(program, pools)))
    offset = HEADER.size + SECTION.size * len(sections)
    table = b""
    body = b""
    for kind, count, blob in sections:
        blob = _pad8(blob)
        table += SECTION.pack(kind, count, offset + len(body), len(blob))
        body += blob
    isa = ISA_V2 if _uses_disp(program) else ISA_V1  # a v1 file stays byte-identical for v1 readers
    header = HEADER.pack(MAGIC, FORMAT_VERSION, isa, 0, program.features, len(sections), 0)
    out = header + table + body
    return out + hashlib.sha256(out).digest()


# ----------------------------------------------------------------------------- decoding
class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"corrupt .siw: {self.name} section is truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def pstr(self) -> str:
        (n,) = self.unpack("<H")
        try:
            return self.take(n).decode()
        except UnicodeDecodeError:
            raise FormatError(f"corrupt .siw: bad name in {self.name} section") from None


def _decode_slot(
    raw: bytes, pipe: str, siw_index: int, pools: tuple[list[int], list[int]], ncode: int, isa: int = ISA_V2
) -> Instr:
    opcode, tcode, mod, flags, f0, f1, f2, f3, imma, immb = SLOT.unpack(raw)
    where = f"SIW {siw_index} {pipe} slot"
    op: Op | None = BY_CODE.get(opcode)
    if op is None:
        raise FormatError(f"corrupt .siw: unknown opcode 0x{opcode:02x} in {where}")
    if op.pipe != pipe:
        raise FormatError(f"corrupt .siw: {op.name} is a {op.pipe}-pipe op but sits in the {where}")
    t = TYPE_BY_CODE.get(tcode & 15) if tcode & 15 else None
    t2 = TYPE_BY_CODE.get(tcode >> 4) if tcode >> 4 else None
    if (tcode & 15 and (t is None or t not in op.types)) or (
        tcode >> 4 and (t2 is None or t2 not in op.types2)
    ):
        raise FormatError(f"corrupt .siw: bad element type code {tcode} for {op.name} in {where}")
    if op.mods:
        if mod >= len(op.mods):
            raise FormatError(f"corrupt .siw: bad modifier {mod} for {op.name} in {where}")
        m = op.mods[mod]
    elif mod:
        raise FormatError(f"corrupt .siw: {op.name} takes no modifier ({where})")
    else:
        m = None
    fields = [f0, f1, f2, f3]
    imms = [imma, immb]
    coord_pool, const_pool = pools
    pos = 0

    def field_value(b: int, allowed: str, coord: bool = False, label: bool = False) -> Reg | Imm | None:
        cls, idx = b >> 5, b & 31
        if cls == CLS_NONE:
            if idx:
                raise FormatError(f"corrupt .siw: bad operand byte 0x{b:02x} in {where}")
            return None
        if cls in (CLS_IMMA, CLS_IMMB):
            if "i" not in allowed or idx:
                raise FormatError(f"corrupt .siw: unexpected immediate for {op.name} in {where}")
            slot = cls - CLS_IMMA
            v = imms[slot]
            if coord:
                if v == HOME_COORD:
                    return Imm(v)
                if not 0 <= v < len(coord_pool):
                    raise FormatError(f"corrupt .siw: coordinate index {v} out of range in {where}")
                return Imm(coord_pool[v])
            if flags >> slot & 1:
                if not 0 <= v < len(const_pool):
                    raise FormatError(f"corrupt .siw: constant index {v} out of range in {where}")
                v = const_pool[v]
            if label and not 0 <= v <= ncode:
                raise FormatError(f"corrupt .siw: branch target {v} outside the code ({where})")
            return Imm(v)
        rc = CLASS_BY_CODE.get(cls)
        if rc is None or rc not in allowed:
            raise FormatError(f"corrupt .siw: operand class {cls} not allowed for {op.name} in {where}")
        limit = len(SPECIAL_REGS) if rc == "s" else REG_COUNTS[rc]
        if idx >= limit:
            raise FormatError(f"corrupt .siw: register index {idx} out of range in {where}")
        return Reg(rc, idx)

    allowed_for = {
        "r": "r",
        "v": "v",
        "p": "p",
        "m": "m",
        "rv": "rv",
        "rvi": "rvi",
        "rvs": "rvsi",
        "ri": "ri",
        "imm": "i",
        "label": "i",
        "coord": "i",
        "group": "i",
    }
    args: list = []
    for spec in op.operands:
        if spec.kind == "mem":
            mode = (flags >> 2) & 3
            base = field_value(fields[pos], "p")
            off = field_value(fields[pos + 1], "ri")
            extra_allowed = {MEM_CONTIG: "i", MEM_STRIDED: "ri", MEM_INDEXED: "v"}.get(mode)
            if base is None or off is None or extra_allowed is None:
                raise FormatError(f"corrupt .siw: bad memory operand in {where}")
            extra = field_value(fields[pos + 2], extra_allowed)
            if mode != MEM_CONTIG and extra is None:
                raise FormatError(f"corrupt .siw: memory operand lacks its stride/index in {where}")
            err = mem_form_error(t, mode)
            if err:
                raise FormatError(f"corrupt .siw: {err} ({where})")
            disp = 0
            if flags & FLAG_DISP:
                if isa < ISA_V2:
                    raise FormatError(f"corrupt .siw: a displacement in an svISA v1 file ({where})")
                if not isinstance(off, Reg):
                    raise FormatError(f"corrupt .siw: a displacement without a register offset ({where})")
                used = sum(1 for b in fields if b >> 5 in (CLS_IMMA, CLS_IMMB))
                if used >= 2 or flags >> used & 1:
                    raise FormatError(f"corrupt .siw: no immediate holds the displacement ({where})")
                disp = imms[used]
                if not disp:
                    raise FormatError(f"corrupt .siw: a displacement flag with a zero displacement ({where})")
            args.append(Mem(base.idx, off, mode, extra, disp))
            pos += 3
            continue
        v = field_value(fields[pos], allowed_for[spec.kind], spec.kind == "coord", spec.kind == "label")
        if v is None and not spec.optional:
            raise FormatError(f"corrupt .siw: {op.name} is missing an operand in {where}")
        args.append(v)
        pos += 1
    if any(fields[pos:]):
        raise FormatError(f"corrupt .siw: stray operand bytes in {where}")
    if flags & ~0x1F or (flags & (FLAG_DISP | 0x0C) and not any(isinstance(a, Mem) for a in args)):
        raise FormatError(f"corrupt .siw: flag bits 0x{flags:02x} that {op.name} does not use in {where}")
    ins = Instr(op, m, t, t2, tuple(args))
    err = check_instr(ins)
    if err:
        raise FormatError(f"corrupt .siw: {err} ({where})")
    return ins


def decode(blob: bytes, name: str = "<input>", *, max_data: int | None = None) -> Program:
    """Parse and validate a .siw image; every inconsistency is a :class:`FormatError`.

    Validation covers every rule the assembler applies (docs/siw-format.md, "Validation"); sizes are
    checked against the file length and the limits of docs/limits.md before anything is allocated.
    `max_data` caps the total bytes of .data/.zero scrolls (default: the memory budget).
    """
    if len(blob) > limits.MAX_SIW_FILE_BYTES:
        raise FormatError(f"{name}: file of {limits.format_size(len(blob))} is over the .siw size limit")
    if len(blob) < HEADER.size + DIGEST_BYTES:
        raise FormatError(f"{name}: not a .siw file (only {len(blob)} bytes)")
    magic, version, isa_rev, _flags, features, nsec, _ = HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise FormatError(f"{name}: not a .siw file (bad magic)", hint="assemble it with `vtpu asm` first")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"{name}: .siw format version {version} is not supported (this vtpu reads version "
            f"{FORMAT_VERSION})",
            hint="re-assemble the program with this vtpu",
        )
    if isa_rev not in (ISA_V1, ISA_V2):
        raise FormatError(
            f"{name}: ISA revision {isa_rev} is not supported (this vtpu implements svISA v1 and v2)"
        )
    body, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise FormatError(f"{name}: checksum mismatch: the file is corrupted or truncated")
    if nsec > limits.MAX_SECTIONS or HEADER.size + nsec * SECTION.size > len(body):
        raise FormatError(f"{name}: corrupt section table")
    secs: dict[int, tuple[int, bytes]] = {}
    for i in range(nsec):
        kind, count, off, size = SECTION.unpack_from(body, HEADER.size + i * SECTION.size)
        if off + size > len(body) or kind in secs:
            raise FormatError(f"{name}: corrupt section table entry {i}")
        secs[kind] = (count, body[off : off + size])
    if SEC_CODE not in secs:
        raise FormatError(f"{name}: no code section")

    def sec(kind):
        return secs.get(kind, (0, b""))

    n_coords, cb = sec(SEC_COORDS)
    if len(cb) < 16 * n_coords:
        raise FormatError(f"{name}: coordinate pool truncated")
    try:
        coord_pool = [coords.from_bytes16(cb[16 * i : 16 * i + 16]) for i in range(n_coords)]
    except coords.CoordError as e:
        raise FormatError(f"{name}: corrupt coordinate pool: {e.message}") from None
    n_consts, kb = sec(SEC_CONSTS)
    if len(kb) < 8 * n_consts:
        raise FormatError(f"{name}: constant pool truncated")
    const_pool = list(struct.unpack_from(f"<{n_consts}q", kb)) if n_consts else []
    ncode, code_b = secs[SEC_CODE]
    if len(code_b) < ncode * SIW_BYTES:
        raise FormatError(f"{name}: code section truncated")
    code = []
    seen: dict[tuple[bytes, int], Instr] = {}  # identical slots decode identically (Instr is immutable)
    for i in range(ncode):
        base = i * SIW_BYTES
        siw = []
        for k in range(3):
            raw = code_b[base + k * SLOT_BYTES : base + (k + 1) * SLOT_BYTES]
            ins = seen.get((raw, k))
            if ins is None:
                ins = _decode_slot(raw, PIPES[k], i, (coord_pool, const_pool), ncode, isa_rev)
                seen[(raw, k)] = ins
            siw.append(ins)
        code.append(tuple(siw))

    def coord_at(idx: int, what: str) -> int:
        if not 0 <= idx < len(coord_pool):
            raise FormatError(f"{name}: {what} refers to coordinate {idx}, outside the pool")
        return coord_pool[idx]

    prog = Program(code=code, features=features)
    n, b = sec(SEC_SYMBOLS)
    r = _Reader(b, "symbols")
    for _ in range(n):
        kind, value = r.unpack("<BI")
        sname = r.pstr()
        if kind == 0:
            if value > ncode:
                raise FormatError(f"{name}: label {sname} points outside the code")
            if sname in prog.labels:
                raise FormatError(f"{name}: label {sname} is defined twice")
            prog.labels[sname] = value
        elif kind == 1:
            if sname in prog.coord_names:
                raise FormatError(f"{name}: coordinate name {sname} is defined twice")
            prog.coord_names[sname] = coord_at(value, f"symbol {sname}")
        else:
            raise FormatError(f"{name}: unknown symbol kind {kind}")
    n, b = sec(SEC_GROUPS)
    r = _Reader(b, "groups")
    for _ in range(n):
        gname = r.pstr()
        (cnt,) = r.unpack("<I")
        if cnt == ALL_MEMBERS:
            prog.groups.append((gname, None))
        else:
            if cnt > limits.MAX_GROUP_MEMBERS:
                raise FormatError(
                    f"{name}: group {gname} lists {cnt} members (limit {limits.MAX_GROUP_MEMBERS})"
                )
            prog.groups.append((gname, tuple(r.unpack(f"<{cnt}I"))))
    n, b = sec(SEC_LINES)
    if n:
        r = _Reader(b, "lines")
        prog.source_file = r.pstr()
        if n != ncode:
            raise FormatError(f"{name}: line map has {n} entries for {ncode} SIWs")
        prog.lines = list(r.unpack(f"<{n}I"))
    n, b = sec(SEC_DATA)
    r = _Reader(b, "data")
    for _ in range(n):
        cidx, tcode, zero, ndim, _ = r.unpack("<IBBBB")
        dtype = TYPE_BY_CODE.get(tcode)
        if dtype is None or ndim > 8:
            raise FormatError(f"{name}: corrupt data entry")
        shape = r.unpack(f"<{ndim}Q")
        (size,) = r.unpack("<Q")
        if zero > 1:
            raise FormatError(f"{name}: corrupt data entry")
        if size > limits.MAX_SCROLL_BYTES:  # checked before anything is allocated
            raise FormatError(
                f"{name}: a data scroll declares {limits.format_size(size)}, over the "
                f"{limits.format_size(limits.MAX_SCROLL_BYTES)} scroll limit (docs/limits.md)"
            )
        if not zero and size > len(b) - r.pos:
            raise FormatError(
                f"{name}: a data scroll declares {size} bytes but the data section holds "
                f"{len(b) - r.pos} more"
            )
        raw = b"" if zero else r.take(size)
        r.take(-r.pos % 8)
        prog.data.append(
            DataScroll(
                coord_at(cidx, "a data scroll"), dtype, tuple(shape), raw, bool(zero), size if zero else 0
            )
        )
    n, b = sec(SEC_OUTPUTS)
    r = _Reader(b, "outputs")
    for _ in range(n):
        kind, tcode, rcls, ridx, cidx = r.unpack("<BBBBI")
        dtype = TYPE_BY_CODE.get(tcode)
        if dtype is None:
            raise FormatError(f"{name}: corrupt output entry")
        if kind == 0:
            rc = CLASS_BY_CODE.get(rcls)
            if rc not in ("r", "v") or ridx >= REG_COUNTS[rc]:
                raise FormatError(f"{name}: corrupt output register")
            prog.outputs.append(Output("reg", reg=Reg(rc, ridx), dtype=dtype))
        elif kind == 1:
            prog.outputs.append(Output("scroll", coord=coord_at(cidx, "an output"), dtype=dtype))
        else:
            raise FormatError(f"{name}: corrupt output entry")
    n, b = sec(SEC_TENSORS)
    if SEC_TENSORS in secs:
        _decode_tensors(prog, n, b, coord_at, name)
    if features & ~((1 << len(FEATURE_BITS)) - 1):
        raise FormatError(f"{name}: requires unknown CPU features (mask 0x{features:x})")
    err = program_error(prog, max_data=max_data, instrs_checked=True)
    if err:
        raise FormatError(f"{name}: invalid program: {err}")
    _check_canonical(prog, blob, name)
    return prog


def _check_canonical(prog: Program, blob: bytes, name: str) -> None:
    """The one encoding of a program is the only accepted one: re-encode and compare. This rejects what
    no field check names -- reserved bytes, padding, unused or unsorted pool entries, section order --
    so that every accepted file is exactly what `vtpu asm` would write for its program."""
    again = encode(prog)
    if again == blob:
        return
    pos = next(
        (i for i, (a, b) in enumerate(zip(again, blob, strict=False)) if a != b), min(len(again), len(blob))
    )
    raise FormatError(
        f"{name}: non-canonical encoding (first difference at byte {pos} of {len(blob)})",
        hint="re-assemble the program with `vtpu asm`",
    )


def read(path: str, *, max_data: int | None = None) -> Program:
    """Load a .siw file; the size is checked before the file is read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.MAX_SIW_FILE_BYTES:
                raise FormatError(
                    f"{path}: file of {limits.format_size(size)} is over the "
                    f"{limits.format_size(limits.MAX_SIW_FILE_BYTES)} .siw size limit"
                )
            blob = f.read(limits.MAX_SIW_FILE_BYTES + 1)
    except OSError as e:
        raise FormatError(f"cannot read {path}: {e.strerror}") from None
    return decode(blob, path, max_data=max_data)
