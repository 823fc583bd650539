"""Semantics as data: the element-wise op families, described once for every engine.

The numpy semantics (``machine/semantics.py``, the golden model) and the LLVM lowering
(``engines/jit/lowering.py``) both read these rows, so a binary op's meaning cannot drift between
engines. Only what no table can say stays hand-written: the f32 min/max tie rule, integer division's
faults, shift-count clamping, NaN canonicalisation (each a small shared helper next to its family).

Families (every rule applies per lane, and to the scalar form on the r register's low bits):

* ``wrap``    -- integer results wrap in the element width; f32 is IEEE-754 binary32, round to
  nearest even, NaN results canonicalised to 0x7FC00000.
* ``bitwise`` -- integers only.
* ``minmax``  -- signed integer min/max; f32 returns NaN if either input is NaN and, on equality,
  ORs (min) or ANDs (max) the bit patterns so that min(-0, +0) = -0 and max(-0, +0) = +0.
* ``div``     -- integers truncate toward zero, a zero divisor faults, MIN / -1 wraps to MIN; f32
  as ``wrap``.
* ``shift``   -- integers only; the count is read as unsigned; a count >= the width gives 0 (DSHL,
  DSHR) or the sign fill (DSAR).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Binary:
    """How one binary D-pipe op computes, in each engine's vocabulary."""

    name: str
    family: str  # "wrap" | "bitwise" | "minmax" | "div" | "shift"
    np_int: str  # numpy ufunc on integer lanes
    ir_int: str  # llvmlite IRBuilder method on integer lanes (minmax: the signed icmp predicate)
    py_int: Callable[[int, int], int] | None  # Python op on sign-extended scalars (wrapped after)
    np_f32: str | None = None  # numpy ufunc on f32 lanes; None: not defined on f32
    ir_f32: str | None = None  # IRBuilder method on f32 lanes


BINARY: dict[str, Binary] = {
    b.name: b
    for b in (
        Binary("DADD", "wrap", "add", "add", operator.add, "add", "fadd"),
        Binary("DSUB", "wrap", "subtract", "sub", operator.sub, "subtract", "fsub"),
        Binary("DMUL", "wrap", "multiply", "mul", operator.mul, "multiply", "fmul"),
        Binary("DDIV", "div", "", "sdiv", None, "divide", "fdiv"),
        Binary("DMIN", "minmax", "minimum", "<", min, "minimum", None),
        Binary("DMAX", "minmax", "maximum", ">", max, "maximum", None),
        Binary("DAND", "bitwise", "bitwise_and", "and_", operator.and_),
        Binary("DOR", "bitwise", "bitwise_or", "or_", operator.or_),
        Binary("DXOR", "bitwise", "bitwise_xor", "xor", operator.xor),
        Binary("DSHL", "shift", "left_shift", "shl", None),
        Binary("DSHR", "shift", "right_shift", "lshr", None),
        Binary("DSAR", "shift", "right_shift", "ashr", None),
    )
}

# ops whose integer form is a plain ring operation (no faults, no clamping): fast paths may use them
RING_OPS = tuple(n for n, b in BINARY.items() if b.family in ("wrap", "bitwise"))


@dataclass(frozen=True)
class Compare:
    """One DCMP condition: numpy ufunc and LLVM predicate (signed for integers, ordered for f32,
    except ``ne``, which is unordered: any NaN makes it true)."""

    cond: str
    np_fn: str
    pred: str
    f32_ordered: bool = True


COMPARE: dict[str, Compare] = {
    c.cond: c
    for c in (
        Compare("eq", "equal", "=="),
        Compare("ne", "not_equal", "!=", f32_ordered=False),
        Compare("lt", "less", "<"),
        Compare("le", "less_equal", "<="),
        Compare("gt", "greater", ">"),
        Compare("ge", "greater_equal", ">="),
    )
}
