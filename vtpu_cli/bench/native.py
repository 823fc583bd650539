"""Read the JIT's native code for a benchmark's hot loop and count the work it really does.

A benchmark counts svISA ops; the numbers mean something only if the native loop still executes them.
This module takes the optimised x86 assembly of a program (``engines.jit.engine.emit_assembly``, the same
pipeline and variant as a one-sentron ``vtpu bench`` run), finds the hot loop and counts, per *source*
loop trip, vector FMAs, dot-product instructions (vpdpbusd/vpdpwssd), memory reads and memory writes.

Source trips per machine trip: the JIT checks the abort flag (a 32-bit atomic load through the pointer
at ctx + OFF_ABORT_PTR) once at every loop head, and LLVM never merges or hoists atomic loads; so the
number of such loads in the machine loop is the unroll factor. Memory accesses to stack slots (``N(%rsp)``
or ``N(%rbp)`` without an index register: spills, reloads, the engine's own bookkeeping) are not counted;
indexed stack accesses are (the one-sentron C-pipe ring lives in the stack frame: CSEND writes it,
CRECV reads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FMA_RE = re.compile(r"^v(f|fn)m(add|sub)(132|213|231)p[sd]$")
DOT_OPS = ("vpdpbusd", "vpdpbusds", "vpdpwssd", "vpdpwssds", "vdpbf16ps")
MEM_RE = re.compile(r"(?:^|[\s,])(-?[\w.@+$-]*)\((%\w+)?(?:,(%\w+))?(?:,\d)?\)")
VREG_RE = re.compile(r"%[xyz]mm\d+")
NO_ACCESS = ("lea", "prefetch", "nop", "clflush")


@dataclass
class Insn:
    line: int
    op: str
    operands: list[str]
    text: str


@dataclass
class LoopCounts:
    """Counted work of one machine loop, and per source loop trip (``per_trip``)."""

    first_line: int
    last_line: int
    trips: int  # source loop trips per machine loop trip (abort checks in the loop)
    fma: int = 0
    dot: int = 0
    reads: int = 0
    writes: int = 0
    vector_reads: int = 0
    vector_writes: int = 0
    instructions: int = 0
    notes: list[str] = field(default_factory=list)

    def per_trip(self) -> dict[str, float]:
        t = max(self.trips, 1)
        return {
            "fma": self.fma / t,
            "dot": self.dot / t,
            "reads": self.reads / t,
            "writes": self.writes / t,
            "vector_reads": self.vector_reads / t,
            "vector_writes": self.vector_writes / t,
            "instructions": self.instructions / t,
        }


def _split_operands(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def function_body(asm: str, name: str = "vtpu_entry") -> tuple[list[Insn], dict[str, int]]:
    """The instructions of one function and the index of each label in that list."""
    insns: list[Insn] = []
    labels: dict[str, int] = {}
    inside = False
    for no, raw in enumerate(asm.splitlines()):
        line = raw.split("#", 1)[0].rstrip()
        if not inside:
            inside = line.strip() == f"{name}:"
            continue
        s = line.strip()
        if not s:
            continue
        if s.startswith(".Lfunc_end"):
            break
        if s.endswith(":"):
            labels[s[:-1]] = len(insns)
            continue
        if s.startswith("."):
            continue  # a directive
        parts = s.split(None, 1)
        insns.append(Insn(no, parts[0], _split_operands(parts[1]) if len(parts) > 1 else [], s))
    if not insns:
        raise ValueError(f"function {name} not found in the assembly")
    return insns, labels


def _mem_operand(op: str) -> tuple[str, str | None, str | None] | None:
    m = re.fullmatch(r"(-?[\w.@+$-]*)\((%\w+)?(?:,(%\w+))?(?:,\d)?\)", op.strip())
    if not m:
        return None
    return m.group(1), m.group(2), m.group(3)


def _stack_slot(mem: tuple[str, str | None, str | None]) -> bool:
    _, base, index = mem
    return base in ("%rsp", "%rbp") and index is None


_R32 = {"eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx", "esi": "rsi", "edi": "rdi", "ebp": "rbp"}


def _reg64(op: str) -> str:
    """%eax -> %rax, %r8d -> %r8 (the register family an operand writes)."""
    if not op.startswith("%"):
        return op
    r = op[1:]
    if r in _R32:
        return "%" + _R32[r]
    m = re.fullmatch(r"(r\d+)[dwb]", r)
    return "%" + m.group(1) if m else op


def abort_checks(insns: list[Insn], abort_offset: int) -> set[int]:
    """Indexes of the 32-bit loads of the abort flag: through a register that holds the pointer read
    from ``abort_offset(ctx)``, where ctx is the first argument (%rdi) or any register or slot it was
    copied to, or from a stack slot the pointer was spilled to."""
    ctx: set[str] = {"%rdi"}  # registers and slots that hold the ctx pointer (copied before %rdi is reused)
    holders: set[str] = {f"{abort_offset}(%rdi)"}
    found: set[int] = set()
    for i, ins in enumerate(insns):
        ops = ins.operands
        if ins.op in ("movq", "movl") and len(ops) == 2:
            src, dst = ops
            if ins.op == "movl" and src.startswith("(") and src[1:-1] in holders:
                found.add(i)
            if ins.op == "movq" and src in ctx:
                ctx.add(dst)
                holders.add(f"{abort_offset}({dst})")
                continue
            if ins.op == "movq" and src in holders:
                holders.add(dst)
                continue
        elif ins.op in ("cmpl",) and len(ops) == 2 and ops[1].startswith("(") and ops[1][1:-1] in holders:
            found.add(i)
        # any other write to a register or slot that held the pointer (or ctx) ends that holding
        if ops and not ins.op.startswith(("cmp", "test", "j")) and not ops[-1].endswith(")"):
            dst = _reg64(ops[-1])
            if dst in ctx:
                ctx.discard(dst)
                holders.discard(f"{abort_offset}({dst})")
            if dst in holders and not (ins.op == "movq" and ops[0] in holders):
                holders.discard(dst)
    return found


def count_range(insns: list[Insn], lo: int, hi: int, checks: set[int]) -> LoopCounts:
    c = LoopCounts(insns[lo].line, insns[hi].line, sum(1 for i in checks if lo <= i <= hi))
    for i in range(lo, hi + 1):
        ins = insns[i]
        op = ins.op
        c.instructions += 1
        if FMA_RE.match(op):
            c.fma += 1
        if op in DOT_OPS:
            c.dot += 1
        if i in checks or op.startswith(NO_ACCESS) or op.startswith("j") or op.startswith("call"):
            continue
        mems = [(k, m) for k, o in enumerate(ins.operands) if (m := _mem_operand(o)) is not None]
        if not mems:
            continue
        vector = bool(VREG_RE.search(ins.text))
        last = len(ins.operands) - 1
        for k, m in mems:
            if _stack_slot(m):
                continue
            is_dest = k == last and len(ins.operands) > 1 or op.startswith(("push", "pop"))
            rmw = is_dest and not op.startswith(("mov", "vmov", "set", "vpscatter", "vscatter", "vextract"))
            if is_dest:
                c.writes += 1
                c.vector_writes += vector
            if not is_dest or rmw:
                c.reads += 1
                c.vector_reads += vector
    return c


def inner_loops(asm: str, abort_offset: int, name: str = "vtpu_entry") -> list[LoopCounts]:
    """Every innermost machine loop (a label and a later backward jump to it) that holds an abort check
    (a source loop head). Raises ValueError when there is none."""
    insns, labels = function_body(asm, name)
    checks = abort_checks(insns, abort_offset)
    ranges = []
    for i, ins in enumerate(insns):
        if ins.op.startswith("j") and ins.operands and ins.operands[0] in labels:
            lo = labels[ins.operands[0]]
            if lo <= i:
                ranges.append((lo, i))
    ranges = [(lo, hi) for lo, hi in ranges if any(lo <= k <= hi for k in checks)]
    inner = [r for r in ranges if not any(o != r and r[0] <= o[0] and o[1] <= r[1] for o in ranges)]
    if not inner:
        raise ValueError("no loop with an abort check (loop head) in the native code")
    return [count_range(insns, lo, hi, checks) for lo, hi in inner]


def _work(c: LoopCounts) -> float:
    return (c.fma + c.dot + c.reads + c.writes) / max(c.trips, 1)


def hot_loop(asm: str, abort_offset: int, name: str = "vtpu_entry") -> LoopCounts:
    """The innermost machine loop that holds the most counted work. Raises ValueError when the function
    has no loop with an abort check."""
    return max(inner_loops(asm, abort_offset, name), key=_work)


def compute_loop(c: LoopCounts) -> bool:
    """A machine loop that computes: it has a vector access, an FMA or a dot instruction. (Exit paths
    that LLVM lays out after a loop can form a backward jump around an abort-flag read; they hold none.)"""
    return bool(c.fma or c.dot or c.vector_reads or c.vector_writes)


def program_asm(program) -> str:
    """The optimised assembly the JIT runs for one sentron (same variant and optimisation level): the
    tier-1 code, never tier 0 (``auto_opt`` is never ``TIER0_OPT``)."""
    try:
        from vtpu_cli.engines.jit.compile import auto_opt, emit_assembly
    except ImportError:  # before the JIT compiler had its own module
        from vtpu_cli.engines.jit.compile import auto_opt, emit_assembly

    return emit_assembly(program, opt=auto_opt(program))


def native_copies(program) -> list[LoopCounts]:
    """The native copies of the hot source loop. A program with one innermost source loop may have
    several (the JIT's fast clone, whose bounds its dispatch proved, and the general loop it falls back
    to), and each must keep the counted work: all of them that compute. Otherwise which native loop
    copies which source loop is not known, and only the busiest is returned."""
    from vtpu_cli.engines.jit.irbase import OFF_ABORT_PTR

    loops = inner_loops(program_asm(program), OFF_ABORT_PTR)
    hot = max(loops, key=_work)
    if len(_inner_source_loops(program)) != 1:
        return [hot]
    return [c for c in loops if compute_loop(c)] or [hot]


def native_counts(program) -> LoopCounts:
    """The counted work of the native hot loop: the copy of it (:func:`native_copies`) with the least."""
    return min(native_copies(program), key=_work)


def _inner_source_loops(program) -> list[tuple[int, int]]:
    """(first, last) SIW of every innermost source loop: a branch target and a backward branch to it."""
    code = program.code
    loops = []
    for pc, siw in enumerate(code):
        d = siw[0]
        if d.op.branch:
            t = d.args[-1].value
            if 0 <= t <= pc:
                loops.append((t, pc))
    return [r for r in loops if not any(o != r and r[0] <= o[0] and o[1] <= r[1] for o in loops)]


def source_loop(program) -> tuple[int, int]:
    """(first, last) SIW of the innermost source loop holding the most ops: a branch target and the
    last backward branch to it."""
    code = program.code
    inner = _inner_source_loops(program)
    if not inner:
        raise ValueError("the program has no loop")

    def n_ops(r):
        return sum(1 for siw in code[r[0] : r[1] + 1] for ins in siw if not ins.is_nop)

    return max(inner, key=n_ops)


def source_counts(program) -> dict[str, int]:
    """Counted work of one trip of the hot source loop: the least the native loop must keep per trip.
    A vector DFMA is one FMA; DTERNARY and DDOT.i8 one dot instruction each; every SGATHER and CRECV
    at least one memory read, every SSCATTR and CSEND at least one write (vector ones vector). DTDOT
    (the interleaved ternary dot) counts as a dot instruction like DTERNARY."""
    lo, hi = source_loop(program)
    c = {"fma": 0, "dot": 0, "reads": 0, "writes": 0, "vector_reads": 0, "vector_writes": 0, "ops": 0}
    body = [ins for siw in program.code[lo : hi + 1] for ins in siw if not ins.is_nop]
    for i, ins in enumerate(body):
        c["ops"] += 1
        name = ins.op.name
        vec = any(getattr(a, "cls", None) == "v" for a in ins.args)
        if name == "DFMA" and vec and ins.type == "f32":
            c["fma"] += 1
        elif name in ("DTERNARY", "DTDOT") or (name == "DDOT" and ins.type == "i8"):
            c["dot"] += 1
        elif name in ("SGATHER", "CRECV"):
            c["reads"] += 1
            c["vector_reads"] += vec or (name == "CRECV" and _vector_message(body, i))
        elif name in ("SSCATTR", "CSEND"):
            c["writes"] += 1
            c["vector_writes"] += vec or (name == "CSEND" and _vector_message(body, i))
    return c


def _reg(a) -> tuple[str, int] | None:
    cls = getattr(a, "cls", None)
    return (cls, a.idx) if cls is not None and hasattr(a, "idx") else None


def _vector_message(body: list, i: int) -> bool:
    """Whether the message that ``body[i]`` (a CSEND or CRECV) moves carries a vector payload, as far as
    the loop body shows: a send's message was last packed from a vector or a scalar register (CPACK), a
    received message is next unpacked into one (CUNPACK). A scalar message (e.g. ``CPACK.i64 m, r``:
    8 bytes) needs only a scalar access in the native loop; anything not shown in the body counts as a
    vector (the stricter check)."""
    m = _reg(body[i].args[0])
    n = len(body)
    if body[i].op.name == "CSEND":
        order = [body[(i - k) % n] for k in range(1, n)]  # backwards, wrapping around the loop
        want, src = "CPACK", 1
    else:
        order = [body[(i + k) % n] for k in range(1, n)]
        want, src = "CUNPACK", 0
    for ins in order:
        if ins.op.name == want and _reg(ins.args[1 - src]) == m:
            r = _reg(ins.args[src])
            return r is None or r[0] != "r"
        if ins.op.name in ("CRECV", "CPACK") and _reg(ins.args[0]) == m:
            return True  # the message register is rewritten first: unknown width, stay strict
    return True


CHECKED = ("fma", "dot", "reads", "writes", "vector_reads", "vector_writes")


def missing_work(program) -> tuple[dict, dict, list[str]]:
    """(source counts, native counts per trip, what the native loop lacks); empty list: nothing lost.
    Every native copy of the hot loop is checked; the counts returned are the least of each kind."""
    src = source_counts(program)
    copies = [(c, c.per_trip()) for c in native_copies(program)]
    nat = {k: min(p[k] for _, p in copies) for k in copies[0][1]}
    lost = []
    for c, p in copies:
        where = f" (native loop at line {c.first_line})" if len(copies) > 1 else ""
        lost += [f"{k}: native {p[k]:g} < source {src[k]}{where}" for k in CHECKED if p[k] < src[k]]
    return src, nat, lost


def _main(argv: list[str]) -> int:
    """``python -m vtpu_cli.bench.native [NAME ...]``: per bench program (full size), each native copy of
    its hot loop with instructions and counted work per source trip, and what it lacks."""
    from vtpu_cli.bench.suite import assemble_program, load_manifests

    ms = {m.name: m for m in load_manifests()}
    names = argv or sorted(n for n, m in ms.items() if "phase0" in m.phases)
    bad = 0
    for name in names:
        if name not in ms:
            print(f"{name}: no such bench program ({', '.join(sorted(ms))})")
            return 2
        prog = assemble_program(ms[name], ms[name].params_for("full"))
        src, _, lost = missing_work(prog)
        print(
            f"{name}: {src['ops']} ops per source trip; counted {', '.join(f'{k} {src[k]}' for k in CHECKED)}"
        )
        for c in native_copies(prog):
            p = c.per_trip()
            print(
                f"  native loop at line {c.first_line}: {p['instructions']:g} instructions per trip; "
                + ", ".join(f"{k} {p[k]:g}" for k in CHECKED)
            )
        for x in lost:
            print(f"  LOST {x}")
        bad += bool(lost)
    return 1 if bad else 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
