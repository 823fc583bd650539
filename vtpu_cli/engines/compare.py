"""Comparing two runs bit for bit: the oracle of the differential tests and the bench's verification."""

from __future__ import annotations

import numpy as np

from vtpu_cli.engines.base import RunResult
from vtpu_cli.isa.table import REG_COUNTS


def same_result(a: RunResult, b: RunResult, *, states: bool = True) -> list[str]:
    """Differences between two runs: status, fault, registers, flags, pc and every scroll's bytes."""
    diffs = []
    if a.status != b.status:
        diffs.append(f"status {a.status} != {b.status}")
    fa = a.fault.as_dict() if a.fault else None
    fb = b.fault.as_dict() if b.fault else None
    if fa != fb:
        diffs.append(f"fault {fa} != {fb}")
    if states:
        for sa, sb in zip(a.sentrons, b.sentrons, strict=True):
            for name in ("R", "P", "M", "flags", "pc", "halted"):
                if getattr(sa, name) != getattr(sb, name):
                    diffs.append(f"sentron {sa.id} {name}: {getattr(sa, name)} != {getattr(sb, name)}")
            if not np.array_equal(sa.V, sb.V):
                rows = [i for i in range(REG_COUNTS["v"]) if not np.array_equal(sa.V[i], sb.V[i])]
                diffs.append(f"sentron {sa.id} V differs in v{rows}")
    ta, tb = a.memory.table, b.memory.table
    if set(ta) != set(tb):
        diffs.append(f"scroll sets differ: {sorted(set(ta) ^ set(tb))}")
    for c in set(ta) & set(tb):
        if not np.array_equal(np.asarray(ta[c].buf), np.asarray(tb[c].buf)):
            diffs.append(f"scroll {c:#x} bytes differ")
    return diffs
