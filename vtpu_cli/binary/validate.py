"""Whole-program rules: what the assembler enforces beyond single instructions, checked again by the
``.siw`` loader so that a crafted file (even with a valid checksum) can never give an engine a program
the assembler would have refused. Per-instruction rules are :func:`check_instr`; intra-SIW hazards are
:func:`siw_hazard` (both in :mod:`vtpu_cli.binary.program`).

Everything here runs on the decoded description only -- nothing is allocated from declared sizes.
"""

from __future__ import annotations

import re

from vtpu_cli.binary import limits
from vtpu_cli.binary.program import TENSOR_ROLES, Imm, Program, check_instr, siw_hazard
from vtpu_cli.core import coords
from vtpu_cli.isa.table import TYPES

# a label, .coord or .group name as the assembler's grammar spells it (grammar/vasm.lark, WORD)
NAME_RE = re.compile(r"\.L[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


MAX_TENSOR_BYTES = 1 << 32  # one declared tensor (one layer): phextcc's per-tensor limit (docs/phx.md)


def data_nbytes(dtype: str, count: int) -> int:
    """Bytes that `count` elements of `dtype` occupy (t2 packs four 2-bit codes per byte)."""
    return (count + 3) // 4 if dtype == "t2" else count * TYPES[dtype][1]


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _has_control(s: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in s)


def program_error(prog: Program, *, max_data: int | None = None, instrs_checked: bool = False) -> str | None:
    """The first rule `prog` breaks, or None.

    `max_data` caps the total bytes of the program's .data/.zero scrolls (default: the per-run memory
    budget, docs/limits.md), so a file that merely *declares* a huge zero-filled scroll is refused before
    anything is allocated. `instrs_checked`: every instruction already passed :func:`check_instr` (the
    loader checks each slot as it decodes it).
    """
    ngroups = len(prog.groups)
    ncode = len(prog.code)
    checked: set[int] = set()  # ids of instructions already checked (programs repeat slots)
    for i, siw in enumerate(prog.code):
        real = []
        for ins in siw:
            if ins.is_nop:
                continue
            real.append(ins)
            if id(ins) in checked:
                continue
            checked.add(id(ins))
            err = None if instrs_checked else check_instr(ins)
            if err:
                return f"{err} (SIW {i} {ins.op.pipe} slot)"
            for spec, a in zip(ins.op.operands, ins.args, strict=False):
                if not isinstance(a, Imm):
                    continue
                if spec.kind == "group" and not 0 <= a.value <= ngroups:
                    return (
                        f"{ins.op.name} names group {a.value} but the program declares {ngroups} "
                        f"(SIW {i} {ins.op.pipe} slot)"
                    )
                if spec.kind == "label" and not 0 <= a.value <= ncode:
                    return f"branch target {a.value} outside the code (SIW {i} {ins.op.pipe} slot)"
        hz = siw_hazard(real) if len(real) > 1 else None
        if hz:
            (cls, idx), a, b = hz
            return f"intra-SIW hazard on {cls}{idx}: {a.op.name} and {b.op.name} in SIW {i}"
    for name, value in prog.labels.items():
        if not NAME_RE.fullmatch(name):
            return f"label name {name!r} is not a valid name"
        if not 0 <= value <= ncode:
            return f"label {name} points outside the code"
    for name in prog.coord_names:
        if not NAME_RE.fullmatch(name):
            return f"coordinate name {name!r} is not a valid name"
    names: set[str] = {"all"}
    for name, members in prog.groups:
        if not NAME_RE.fullmatch(name):
            return f"group name {name!r} is not a valid name"
        if name in names:
            return f"group {name} is defined twice"
        names.add(name)
        if members is None:
            continue
        if len(members) > limits.MAX_GROUP_MEMBERS:
            return f"group {name} has {len(members)} members (limit {limits.MAX_GROUP_MEMBERS})"
        if any(not 0 <= m <= limits.MAX_SENTRON_ID for m in members):
            return f"group {name} names a sentron id outside 0..{limits.MAX_SENTRON_ID}"
        if len(set(members)) != len(members):
            return f"group {name} lists a sentron twice"
        if list(members) != sorted(members):
            return f"group {name} members are not in ascending order"
    if _has_control(prog.source_file):
        return "the source file name contains control characters"
    if prog.lines and len(prog.lines) != ncode:
        return f"line map has {len(prog.lines)} entries for {ncode} SIWs"
    seen: set[int] = set()
    total = 0
    budget = limits.default_memory_budget() if max_data is None else max_data
    for d in prog.data:
        where = coords.format_packed(d.coord)
        if d.coord in seen:
            return f"scroll {where} is defined twice"
        seen.add(d.coord)
        if d.dtype not in TYPES:
            return f"scroll {where} has unknown element type {d.dtype!r}"
        if not 1 <= len(d.shape) <= limits.MAX_DATA_DIMS or any(x < 0 for x in d.shape):
            return f"scroll {where} has a bad shape {list(d.shape)}"
        if d.size > limits.MAX_SCROLL_BYTES:
            return (
                f"scroll {where} declares {limits.format_size(d.size)}, over the "
                f"{limits.format_size(limits.MAX_SCROLL_BYTES)} scroll limit"
            )
        if data_nbytes(d.dtype, _prod(d.shape)) != d.size:
            return f"scroll {where}: shape {list(d.shape)} of {d.dtype} does not match its {d.size} bytes"
        total += d.size
        if total > budget:
            return (
                f"the program's data scrolls declare over {limits.format_size(budget)}, the memory budget "
                f"(raise it with --mem-limit or ${limits.MEM_LIMIT_ENV})"
            )
    for o in prog.outputs:
        if o.dtype not in TYPES:
            return f"output has unknown element type {o.dtype!r}"
    return tensors_error(prog)


def tensors_error(prog: Program) -> str | None:
    """Rules of the declared-tensor table (the ``.siw`` tensors section): the runner trusts these entries
    to check ``--mem`` data and name ``--out`` results, so names are valid and distinct, roles, types
    and shapes are ones phextcc can declare, and a layer stack stays inside the scroll part's 1..999."""
    if not 0 <= prog.sentrons <= limits.MAX_SENTRON_ID + 1:
        return f"the program says it was compiled for {prog.sentrons} sentrons (at most {limits.MAX_SENTRON_ID + 1})"
    names: set[str] = set()
    for t in prog.tensors:
        if len(t.name.encode()) > limits.MAX_NAME_BYTES:
            return f"tensor name of {len(t.name.encode())} bytes is over {limits.MAX_NAME_BYTES}"
        if not NAME_RE.fullmatch(t.name):
            return f"tensor name {t.name!r} is not a valid name"
        if t.name in names:
            return f"tensor {t.name} is declared twice"
        names.add(t.name)
        if t.role not in TENSOR_ROLES:
            return f"tensor {t.name} has unknown role {t.role!r}"
        if t.dtype not in TYPES:
            return f"tensor {t.name} has unknown element type {t.dtype!r}"
        if not 1 <= len(t.shape) <= limits.MAX_DATA_DIMS or any(d < 1 for d in t.shape):
            return f"tensor {t.name} has a bad shape {list(t.shape)[: limits.MAX_DATA_DIMS + 1]}"
        if data_nbytes(t.dtype, _prod(t.shape)) > MAX_TENSOR_BYTES:
            return f"tensor {t.name} declares over {limits.format_size(MAX_TENSOR_BYTES)}"
        if not coords.is_valid_packed(t.coord):
            return f"tensor {t.name} has an invalid coordinate"
        last = coords.get_part_packed(t.coord, 8)
        if t.layers < 1 or last + t.layers - 1 > coords.PART_MAX:
            return f"tensor {t.name}: {t.layers} layers from scroll part {last} run past {coords.PART_MAX}"
        if t.layers > 1 and t.role == "output":
            return f"output tensor {t.name} cannot be a layer stack"
    return None
