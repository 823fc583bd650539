"""Disassembler: :class:`Program` -> svISA text that re-assembles to the identical binary."""

from __future__ import annotations

import numpy as np

from vtpu_cli.binary.program import MEM_CONTIG, MEM_INDEXED, MEM_STRIDED, Imm, Instr, Mem, Program, Reg
from vtpu_cli.core import coords
from vtpu_cli.core.numerics import bits_bf16, bits_f32
from vtpu_cli.isa.table import ANY_SENDER, HOME_COORD, TYPES


def fmt_float_bits(bits: int, t: str) -> str:
    """Shortest decimal that rounds back to the same bits; NaNs as raw hex bits."""
    val = bits_f32(bits) if t == "f32" else bits_bf16(bits)
    if val != val:
        return f"0x{bits:08x}" if t == "f32" else f"0x{bits:04x}"
    if val in (float("inf"), float("-inf")):
        return "inf" if val > 0 else "-inf"
    text = str(np.float32(val))
    if t == "bf16" and bits != _bf16_of(text):  # pragma: no cover - str(f32) of a bf16 value is exact
        return f"0x{bits:04x}"
    return text


def _bf16_of(text: str) -> int:
    from vtpu_cli.core.numerics import bf16_bits

    return bf16_bits(float(text))


class Disassembler:
    def __init__(self, program: Program):
        self.p = program
        self.label_at: dict[int, list[str]] = {}
        for name, idx in sorted(program.labels.items()):
            self.label_at.setdefault(idx, []).append(name)
        self.coord_name = {}
        for name, v in sorted(program.coord_names.items()):
            self.coord_name.setdefault(v, name)
        self.local: dict[int, str] = {}
        for siw in program.code:
            for ins in siw:
                for spec, arg in zip(ins.op.operands, ins.args, strict=False):
                    if spec.kind == "label" and isinstance(arg, Imm) and arg.value not in self.label_at:
                        self.local.setdefault(arg.value, f".L{arg.value}")

    def label(self, idx: int) -> str:
        if idx in self.label_at:
            return self.label_at[idx][0]
        return self.local[idx]

    def coord(self, v: int) -> str:
        if v == HOME_COORD:
            return "home"
        return self.coord_name.get(v) or coords.format_packed(v)

    def imm(self, value: int, t: str | None) -> str:
        if t in ("f32", "bf16"):
            return fmt_float_bits(value, t)
        return str(value)

    def operand(self, ins: Instr, kind: str, arg) -> str:
        if isinstance(arg, Reg):
            return str(arg)
        if isinstance(arg, Mem):
            off = (
                str(arg.off)
                if isinstance(arg.off, Reg)
                else (
                    ""
                    if arg.off.value == 0
                    else (f" + {arg.off.value}" if arg.off.value > 0 else f" - {-arg.off.value}")
                )
            )
            if isinstance(arg.off, Reg):
                off = f" + {arg.off}"
                if arg.disp:
                    off += f" + {arg.disp}" if arg.disp > 0 else f" - {-arg.disp}"
            if arg.mode == MEM_INDEXED:
                return f"[p{arg.base}{off} + {arg.extra}]"
            if arg.mode == MEM_STRIDED:
                return f"[p{arg.base}{off} : {arg.extra if isinstance(arg.extra, Reg) else arg.extra.value}]"
            assert arg.mode == MEM_CONTIG
            return f"[p{arg.base}{off}]"
        v = arg.value
        if kind == "label":
            return self.label(v)
        if kind == "coord":
            return self.coord(v)
        if kind == "group":
            return "all" if v == 0 else self.p.groups[v - 1][0]
        if ins.op.name == "CRECV" and kind == "ri" and v == ANY_SENDER:
            return "any"
        if kind in ("rvi", "rvs") or (kind == "ri" and ins.op.name == "DBCAST"):
            return self.imm(v, ins.type)
        return str(v)

    def instr(self, ins: Instr) -> str:
        parts = []
        count = None
        for spec, arg in zip(ins.op.operands, ins.args, strict=False):
            if arg is None:
                continue
            parts.append(self.operand(ins, spec.kind, arg))
            if isinstance(arg, Mem) and arg.mode == MEM_CONTIG and isinstance(arg.extra, Imm):
                count = arg.extra.value
        if count is not None:  # a contiguous access's byte count is written as a trailing operand
            parts.append(str(count))
        text = ins.mnemonic()
        if ins.op.name == "DMOV" and ins.type is None:
            text = "DMOV"
        if ins.op.name == "DMOV" and ins.type == "i64":
            text = "DMOV"
        return text + (" " + ", ".join(parts) if parts else "")

    def data_lines(self) -> list[str]:
        from vtpu_cli.asm.assembler import encode_values, nbytes_for  # noqa: F401  (nbytes_for used for the zero form)

        out = []
        for d in self.p.data:
            target = self.coord(d.coord)
            shape = "[" + ", ".join(map(str, d.shape)) + "]"
            if d.zero:
                out.append(f".zero {target} {d.dtype}{shape}")
                continue
            out.append(f".data {target} {d.dtype}{shape} {self.values(d)}")
        return out

    def values(self, d) -> str:
        raw = d.data
        t = d.dtype
        n = 1
        for s in d.shape:
            n *= s
        text = None
        if t == "t2":
            codes = [(raw[k >> 2] >> (2 * (k & 3))) & 3 for k in range(n)]
            from vtpu_cli.asm.assembler import pack_ternary

            if 3 not in codes and pack_ternary(codes) == raw:
                text = ", ".join(str(c - 1) for c in codes)
        elif t in ("f32", "bf16"):
            bits = np.frombuffer(raw, dtype="<u4" if t == "f32" else "<u2")
            text = ", ".join(fmt_float_bits(int(b), t) for b in bits)
        else:
            vals = np.frombuffer(raw, dtype=TYPES[t][2])
            text = ", ".join(str(int(v)) for v in vals)
        if text is None or not raw:
            return f'hex "{raw.hex()}"' if raw else ""
        return text

    def render(self) -> str:
        p = self.p
        v2 = any(isinstance(a, Mem) and a.disp for siw in p.code for ins in siw for a in ins.args)
        out = [f"; svISA v{2 if v2 else 1} -- {len(p.code)} SIWs, {p.op_count()} ops"]
        if p.lines:
            out.append(f'.file "{_escape(p.source_file)}"')
        else:
            out.append(".lines off")
        for name, v in sorted(p.coord_names.items()):
            out.append(f".coord {name} = {coords.format_packed(v)}")
        for name, members in p.groups:
            out.append(f".group {name} = " + ("all" if members is None else ", ".join(map(str, members))))
        out.extend(self.data_lines())
        outs = []
        for o in p.outputs:
            if o.kind == "reg":
                outs.append(f"{o.reg}.{o.dtype}")
            else:
                name = self.coord_name.get(o.coord)
                outs.append(f"{name}.{o.dtype}" if name else coords.format_packed(o.coord))
        if outs:
            out.append(".output " + ", ".join(outs))
        if p.sentrons:
            out.append(f".sentrons {p.sentrons}")
        for t in p.tensors:
            shape = "[" + ", ".join(map(str, t.shape)) + "]"
            layers = f" layers {t.layers}" if t.layers != 1 else ""
            out.append(f".tensor {t.role} {t.name} {t.dtype}{shape} {coords.format_packed(t.coord)}{layers}")
        width = max((len(self.instr(i)) for siw in p.code for i in siw[:2]), default=0)
        width = min(width, 48)
        for idx, siw in enumerate(p.code):
            for name in self.label_at.get(idx, []):
                out.append(f"{name}:")
            if idx in self.local:
                out.append(f"{self.local[idx]}:")
            if p.lines:
                out.append(f".loc {p.lines[idx]}")
            cells = [self.instr(i) for i in siw]
            out.append(
                "    " + " | ".join(c.ljust(width) if k < 2 else c for k, c in enumerate(cells)).rstrip()
            )
        end = len(p.code)
        for name in self.label_at.get(end, []):
            out.append(f"{name}:")
        if end in self.local:
            out.append(f"{self.local[end]}:")
        return "\n".join(out) + "\n"


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def disassemble(program: Program) -> str:
    return Disassembler(program).render()
