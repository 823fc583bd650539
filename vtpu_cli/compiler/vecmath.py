"""Vector building blocks shared by the tensor-op lowerings and the loop kernels: the constant pool
(lane indices, -inf) and exp(x) in f32."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vtpu_cli.binary.program import Imm
from vtpu_cli.compiler.ir import Builder, VReg, imm
from vtpu_cli.core.numerics import f32_bits

if TYPE_CHECKING:
    from vtpu_cli.compiler.lower import Lowerer

NEG_INF = 0xFF800000
LOG2E = 1.4426950408889634
LN2_HI = 0.693359375  # Cody-Waite split of ln 2 (exact in f32 with trailing zeros)
LN2_LO = -2.12194440e-4
EXP_LO, EXP_HI = -87.0, 88.0
EXP_COEFFS = [1.0, 1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040]  # Taylor, degree 7
CONST_SCROLL = "$const"


def F(x: float) -> Imm:
    return imm(f32_bits(x))


def b_const(b: Builder, value: float) -> VReg:
    v = b.new("v", "k")
    b.emit("DBCAST", v, F(value), type="f32")
    return v


def const_iota(lw: Lowerer) -> str:
    """A shared read-only scroll holding i32 0..15 (used for lane masks and indices)."""
    import numpy as np

    from vtpu_cli.compiler.ir import Scroll
    from vtpu_cli.core import coords

    if CONST_SCROLL not in lw.b.scrolls:
        data = np.arange(16, dtype="<i4").tobytes() + np.full(16, NEG_INF, "<u4").tobytes()
        lw.b.scrolls[CONST_SCROLL] = Scroll(
            CONST_SCROLL,
            "i32",
            (32,),
            128,
            coord=coords.pack_parts((997, 1, 1, 1, 1, 1, 1, 1, 1)),
            role="const",
            data=data,
        )
    return CONST_SCROLL


def neg_inf(lw: Lowerer) -> VReg:
    """A vector of -inf (loaded from the constant scroll: the disassembler prints an -inf
    immediate as `-inf`, which the assembler does not read back)."""
    b = lw.b
    return b.load("f32", b.new("v", "ninf"), const_iota(lw), 64)


def exp_vec(b: Builder, x: VReg) -> VReg:
    """exp(x) in f32 by range reduction x = n ln2 + r (|r| <= ln2/2, Cody-Waite) and a degree-7
    Taylor polynomial in Horner form with fused multiply-adds; 2^n is built in the exponent bits.
    Inputs are clamped to [-87, 88] (no overflow to inf, no subnormal results)."""
    t = b.new("v")
    b.emit("DMAX", t, x, F(EXP_LO), type="f32")
    b.emit("DMIN", t, t, F(EXP_HI), type="f32")
    k = b.new("v")
    b.emit("DMUL", k, t, F(LOG2E), type="f32")
    n = b.new("v")
    b.emit("DCVT", n, k, None, type="i32", type2="f32")
    nf = b.new("v")
    b.emit("DCVT", nf, n, None, type="f32", type2="i32")
    nneg_hi = b.new("v")
    b.emit("DMUL", nneg_hi, nf, F(-LN2_HI), type="f32")  # exact: LN2_HI has 9 significant bits
    r = b.new("v")
    b.emit("DADD", r, t, nneg_hi, type="f32")
    r2 = b.new("v")
    b.emit("DFMA", r2, nf, b_const(b, -LN2_LO), r, type="f32")
    p = b.new("v")
    b.emit("DBCAST", p, F(EXP_COEFFS[7]), type="f32")
    for c in reversed(EXP_COEFFS[:7]):
        p2 = b.new("v")
        b.emit("DFMA", p2, p, r2, F(c), type="f32")
        p = p2
    e = b.new("v")
    b.emit("DADD", e, n, imm(127), type="i32")
    b.emit("DSHL", e, e, imm(23), type="i32")
    out = b.new("v")
    b.emit("DMUL", out, p, e, type="f32")
    return out
