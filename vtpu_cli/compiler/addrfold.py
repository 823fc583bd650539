"""Address folding: ``DADD.i64 x, y, c`` feeding ``[p + x]`` becomes ``[p + y + c]`` (svISA v2).

The tile loops compute one address per access (``x = y + c``, then ``[p + x]``): a D-pipe op per load or
store that the displacement address mode makes unnecessary. Per basic block, an access whose offset
register was last written by such a ``DADD`` -- with ``y`` not written since -- reads ``y`` and the
displacement instead; a ``DADD`` whose result is then read nowhere in the function is deleted. The
accessed bytes are the same (``y + c`` wraps like the ``DADD``), so are the results; the alias ranges
the scheduler reads (``MemInfo``) move from ``x`` to ``y`` by ``c``.
"""

from __future__ import annotations

from vtpu_cli.binary.program import Imm
from vtpu_cli.compiler.ir import VI, Label, MemInfo, VMem, VReg

_DISP_MIN, _DISP_MAX = -(1 << 31), (1 << 31) - 1


def _address_add(it: VI) -> tuple[VReg, VReg, int] | None:
    """(x, y, c) of ``DADD.i64 x, y, c`` (either operand order) with x and y distinct r registers."""
    if it.op.name != "DADD" or it.type != "i64" or len(it.args) != 3:
        return None
    x, a, b = it.args
    if b.__class__ is VReg and a.__class__ is not VReg:
        a, b = b, a
    if x.__class__ is not VReg or a.__class__ is not VReg or x is a or x.cls != "r" or a.cls != "r":
        return None
    c = b.value if isinstance(b, Imm) else b if isinstance(b, int) else None
    if c is None or not _DISP_MIN <= c <= _DISP_MAX:
        return None
    return x, a, c


def fold_addresses(code: list) -> int:
    """Fold address adds into the accesses of ``code`` (in place); returns the ``DADD``s deleted."""
    defs: dict[VReg, tuple[int, VReg, int]] = {}  # x -> (its DADD's index, y, c), this block
    from_src: dict[VReg, list[VReg]] = {}  # y -> the x defined from it (forgotten when y is written)
    folded: dict[int, VReg] = {}  # index of a DADD some access now bypasses -> its x
    for k, it in enumerate(code):
        if it.__class__ is not VI:
            if it.__class__ is Label:
                defs.clear()
                from_src.clear()
            continue
        if defs and it.op.pipe == "S":
            args = it.args
            for i, a in enumerate(args):
                if a.__class__ is not VMem or a.off.__class__ is not VReg:
                    continue
                d = defs.get(a.off)
                if d is None:
                    continue
                j, y, c = d
                disp = a.disp + c
                if not _DISP_MIN <= disp <= _DISP_MAX:
                    continue
                args = [*args[:i], VMem(a.base, y, a.mode, a.extra, disp), *args[i + 1 :]]
                mem = it.mem
                if mem is not None and mem.rel is a.off:  # bytes relative to x = relative to y, moved by c
                    lo, hi = (None, None) if mem.lo is None else (mem.lo + c, mem.hi + c)
                    mem = MemInfo(mem.scroll, mem.write, lo, hi, y)
                it = code[k] = VI(it.op, it.mod, it.type, it.type2, args, mem, it.line)
                folded[j] = a.off
        writes = it.regs()[1]
        for z in writes:
            defs.pop(z, None)
            for x in from_src.pop(z, ()):
                d = defs.get(x)
                if d is not None and d[1] is z:
                    del defs[x]
        add = _address_add(it)
        if add is not None:
            x, y, c = add
            defs[x] = (k, y, c)
            from_src.setdefault(y, []).append(x)
        if it.op.branch:
            defs.clear()
            from_src.clear()
    if not folded:
        return 0
    read: set[VReg] = set()
    for it in code:
        if it.__class__ is VI:
            read.update(it.regs()[0])
    dead = {j for j, x in folded.items() if x not in read}
    if dead:
        code[:] = [it for k, it in enumerate(code) if k not in dead]
    return len(dead)
