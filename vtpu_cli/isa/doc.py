"""Generate the ISA reference (docs/isa.md) and the `vtpu isa` table from the op table."""

from __future__ import annotations

from vtpu_cli.isa.table import (
    CMP_CONDS,
    ISA_REVISION,
    OPS,
    REG_COUNTS,
    SPECIAL_REGS,
    TYPES,
    V01_OPS,
    Op,
    default_type,
)

_KIND_TEXT = {
    "r": "rN",
    "v": "vN",
    "p": "pN",
    "m": "mN",
    "rv": "rN|vN",
    "rvi": "rN|vN|imm",
    "rvs": "rN|vN|sreg|imm",
    "ri": "rN|imm",
    "imm": "imm",
    "label": "label",
    "coord": "coord",
    "group": "group",
    "mem": "mem",
}
_ROLE = {"r": "in", "w": "out", "rw": "in/out"}


def operand_text(op: Op) -> str:
    parts = []
    for o in op.operands:
        t = f"{_KIND_TEXT[o.kind]}"
        parts.append(f"[{t}]" if o.optional else t)
    return ", ".join(parts)


def syntax(op: Op) -> str:
    mn = op.name
    if op.mods:
        mn += ".{" + "|".join(op.mods) + "}"
    if op.types:
        mn += ".{" + "|".join(op.types) + "}"
    if op.types2:
        mn += ".{" + "|".join(op.types2) + "}"
    ops = operand_text(op)
    return f"{mn} {ops}".strip()


def isa_markdown() -> str:
    out = [
        "<!-- generated from vtpu_cli/isa.py by `vtpu isa --markdown`; do not edit by hand -->",
        f"# svISA v{ISA_REVISION} reference",
        "",
        "Every op of the virtual tensor processor, generated from the op table (`vtpu_cli/isa.py`), the single",
        "source of truth for the assembler, the .siw codec, the disassembler, the interpreter and the JIT.",
        "",
        "## Machine",
        "",
        "- An SIW (sentron instruction word) has one slot per pipe: **D** (dense compute and control flow),",
        "  **S** (phext memory), **C** (coordination between sentrons). An empty slot is that pipe's NOP.",
        "- The slots of one SIW are independent: no slot may read or write a register another slot writes",
        "  (the assembler rejects such *intra-SIW hazards*). They execute D, S, C; a branch takes effect after",
        "  the whole SIW. A blocking C op blocks the whole SIW before any slot executes.",
        f"- Registers: r0..r{REG_COUNTS['r'] - 1} scalar 64-bit, v0..v{REG_COUNTS['v'] - 1} vector 512-bit, "
        f"p0..p{REG_COUNTS['p'] - 1} phext coordinates (packed 90-bit values, initialised to the sentron's home "
        f"coordinate), m0..m{REG_COUNTS['m'] - 1} messages (up to 64 bytes), and the special registers "
        f"{', '.join('`' + s + '`' for s in SPECIAL_REGS)} (sentron id, sentron count, status flags; bit 0 of "
        "flags is the result of the last scalar DCMP).",
        "- Scalar registers hold canonical 64-bit values: integer results are sign-extended from their element "
        "width, f32/bf16 results are the bit pattern, zero-extended. A scalar op of type t reads the low t bits.",
        "- A vector register is typed by the op suffix: "
        + ", ".join(f"{t} ({64 // s}x{s * 8}-bit)" for t, (_, s, _) in TYPES.items() if t not in ("t2", "u8"))
        + ". An op written without a type suffix uses its default type (i64 where allowed).",
        "",
        "## Numerics",
        "",
        "- f32 is IEEE-754 binary32 with round-to-nearest-even and no flush-to-zero; DFMA rounds once.",
        "- Every f32 result that is NaN is the canonical quiet NaN 0x7FC00000 (so engines agree bit for bit).",
        "- Integer arithmetic wraps (two's complement) except where an op says it saturates or faults.",
        "- Reductions (DRED) use a fixed pairwise tree; CREDUCE combines members in ascending id order.",
        f"- DCMP conditions: {', '.join(CMP_CONDS)}.",
        "",
        "## Ternary packing",
        "",
        "Ternary weights are 2-bit codes c = w + 1 (0 = -1, 1 = 0, 2 = +1; 3 is reserved and computes as +2). "
        "Weight k of a packed array sits at bits 2*(k mod 4) of byte k div 4 (little-endian within the byte). "
        "`.data NAME t2 ...` takes the values -1/0/1 and packs them this way. DTERNARY reads 64 codes (16 bytes) "
        "from one 128-bit quarter of its weight register. DTDOT reads the interleaved form instead: plane q is "
        "bits 2q..2q+1 of each of the 64 bytes (every byte holds one code of each of 4 planes), and it "
        "accumulates the raw code, so the program subtracts sum(a) once (phextcc's t2 tiles, docs/phx.md).",
        "",
        "## Memory operands",
        "",
        "`[pN + off]` (off: immediate or rN; optional trailing byte count for partial vector accesses), "
        "`[pN + off : stride]` (strided; stride: immediate or rN bytes), `[pN + off + vI]` (indexed: lane i at "
        "off + vI.i32[i] * element size). In every form a register offset may carry a signed 32-bit "
        "displacement, `[pN + rM + disp]` / `[pN + rM - disp]` (svISA v2): the offset is then rM + disp, "
        "added like DADD.i64 (wrapping), before the bounds check. A .siw file that uses a displacement "
        "declares ISA revision 2; one that does not is a v1 file.",
        "",
        "## Op summary",
        "",
        "| op | pipe | syntax | summary | v0.1 |",
        "|---|---|---|---|---|",
    ]
    for op in OPS:
        out.append(
            f"| {op.name} | {op.pipe} | `{syntax(op)}` | {op.summary} | {'yes' if op.name in V01_OPS else ''} |"
        )
    out += ["", "## Ops", ""]
    for op in OPS:
        out.append(f"### {op.name}")
        out.append("")
        out.append(f"`{syntax(op)}` -- {op.pipe} pipe, opcode 0x{op.code:02x}, latency class {op.latency}")
        out.append("")
        out.append(f"{op.summary[0].upper() + op.summary[1:]}. {op.semantics}")
        notes = []
        if op.operands:
            notes.append(
                "operands: "
                + ", ".join(
                    f"{_KIND_TEXT[o.kind]} ({_ROLE[o.role]}{', optional' if o.optional else ''})"
                    for o in op.operands
                )
            )
        if op.types and default_type(op):
            notes.append(f"default type: {default_type(op)}")
        if op.vector_only:
            notes.append("vector form only")
        if op.blocking:
            notes.append("may block")
        if op.branch:
            notes.append("control flow")
        for idx, lo, hi in op.imm_range:
            notes.append(f"operand {idx + 1} in {lo}..{hi}")
        if notes:
            out.append("")
            out.append("*" + "; ".join(notes) + ".*")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def isa_table():
    from rich.table import Table

    t = Table(title=f"svISA v{ISA_REVISION}: {len(OPS)} ops")
    for col in ("op", "pipe", "syntax", "summary"):
        t.add_column(col)
    for op in OPS:
        t.add_row(op.name, op.pipe, syntax(op), op.summary)
    return t
