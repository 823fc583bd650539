"""Per-op semantics of the reference interpreter against numpy / exact references, with edge cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.core.numerics import CANON_NAN32, bits_f32, f32_bits, fma_f32
from vtpu_cli.engines.interp.interpreter import Interpreter

F32_MAX = float(np.finfo(np.float32).max)


def run_vec(inputs: dict[int, np.ndarray], body: str, sentrons: int = 1):
    """Load each input array (64 bytes) into v<k>, run `body`, return sentron 0's state."""
    lines = []
    for k, (_vreg, arr) in enumerate(sorted(inputs.items())):
        raw = np.ascontiguousarray(arr).tobytes()
        assert len(raw) == 64, raw
        lines.append(f'.data 1.1.1/1.1.1/1.1.{k + 1} u8 hex "{raw.hex()}"')
    for k, (vreg, _) in enumerate(sorted(inputs.items())):
        lines.append(f"    SCOORD p0, 1.1.1/1.1.1/1.1.{k + 1}")
        lines.append(f"    SGATHER.i8 v{vreg}, [p0]")
    lines.append(body)
    res = Interpreter(assemble("\n".join(lines), "t.vasm"), sentrons).run()
    assert res.status == "ok", res.fault
    return res.sentrons[0]


def f32x16(*vals) -> np.ndarray:
    a = np.zeros(16, np.float32)
    a[: len(vals)] = vals
    return a


# ----------------------------------------------------------------------------- exact f32 rounding oracle
def round_to_f32(x: Fraction) -> int:
    """Correctly round an exact rational to binary32 (nearest even) and return its bits."""
    if x == 0:
        return 0
    sign = 0x80000000 if x < 0 else 0
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    e = max(e, -126)  # subnormal range shares the minimum exponent
    scale = Fraction(2) ** (e - 23)
    q = x / scale
    n = q.numerator // q.denominator
    rem = q - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    val = n * scale
    if val > Fraction(F32_MAX):
        return sign | 0x7F800000
    return sign | f32_bits(float(val))  # exact: val is representable


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(finite_f32, finite_f32, finite_f32)
def test_fma_is_single_rounding(a, b, c):
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    got = fma_f32(np.array([a], np.float32), np.array([b], np.float32), np.array([c], np.float32))
    assert int(got.view("<u4")[0]) == round_to_f32(exact) or (exact == 0)


def test_fma_differs_from_double_rounding_on_a_known_case():
    # a*b = 1 + 2^-11 + 2^-24 is exactly a binary32 midpoint; adding 2^-60 moves the exact sum above it,
    # but binary64 cannot hold the 2^-60, so computing in double and rounding again would tie to even (down).
    a = b = np.float32(1 + 2.0**-12)
    c = np.float32(2.0**-60)
    exact = round_to_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
    naive = int(np.array([np.float32(np.float64(a) * np.float64(b) + np.float64(c))]).view("<u4")[0])
    ours = int(fma_f32(np.array([a]), np.array([b]), np.array([c])).view("<u4")[0])
    assert naive != exact  # the case really distinguishes a naive FMA
    assert ours == exact == f32_bits(1 + 2.0**-11 + 2.0**-23)


def test_vector_fma_in_the_interpreter():
    a = f32x16(1.5, -2.0, 3.0, 0.1)
    b = f32x16(2.0, 4.0, -1.0, 0.1)
    c = f32x16(0.25, 1.0, 1.0, -0.01)
    s = run_vec({0: a, 1: b, 2: c}, "    DFMA.f32 v3, v0, v1, v2")
    want = fma_f32(a, b, c)
    assert s.view("f32")[3].tobytes() == want.tobytes()
    assert s.view("f32")[3][0] == 3.25


def test_f32_nan_results_are_canonical():
    a = f32x16(0.0, np.inf, 1.0)
    b = f32x16(np.inf, -np.inf, 2.0)
    nan_payload = np.array([0x7FA00001] * 16, "<u4").view("<f4")
    s = run_vec(
        {0: a, 1: b, 2: nan_payload},
        "    DMUL.f32 v3, v0, v1\n    DADD.f32 v4, v0, v1\n    DADD.f32 v5, v2, v0",
    )
    bits3 = s.view("i32")[3].view("<u4")
    assert bits3[0] == CANON_NAN32  # 0 * inf
    assert s.view("i32")[4].view("<u4")[1] == CANON_NAN32  # inf + -inf
    assert s.view("f32")[4][2] == 3.0
    assert (s.view("i32")[5].view("<u4") == CANON_NAN32).all()  # NaN payloads never leak


def test_denormals_are_not_flushed():
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    s = run_vec({0: f32x16(tiny), 1: f32x16(tiny)}, "    DADD.f32 v2, v0, v1")
    assert s.view("f32")[2][0] == np.float32(2 * tiny)
    assert s.view("f32")[2][0] != 0


@pytest.mark.parametrize("t,np_t", [("i8", np.int8), ("i16", np.int16), ("i32", np.int32), ("i64", np.int64)])
def test_integer_arithmetic_wraps(t, np_t):
    info = np.iinfo(np_t)
    n = 64 // np.dtype(np_t).itemsize
    a = np.full(n, info.max, np_t)
    b = np.ones(n, np_t)
    b[1] = info.max
    s = run_vec({0: a, 1: b}, f"    DADD.{t} v2, v0, v1\n    DMUL.{t} v3, v0, v1\n    DSUB.{t} v4, v1, v0")
    with np.errstate(over="ignore"):
        assert (s.view(t)[2] == (a + b)).all()
        assert s.view(t)[2][0] == info.min
        assert (s.view(t)[3] == (a * b)).all()
        assert (s.view(t)[4] == (b - a)).all()


def test_scalar_integer_wrap_and_division(run_src):
    res = run_src("""
    DMOV r1, 0x7fffffffffffffff
    DADD r2, r1, 1
    DMOV r3, -7
    DDIV r4, r3, 2
    DMOV r5, -9223372036854775808
    DDIV r6, r5, -1
    DADD.i8 r7, r1, 0
    DMUL.i32 r8, r1, r1
    """)
    R = res.sentrons[0].R
    assert R[2] == -(2**63)
    assert R[4] == -3  # truncation toward zero
    assert R[6] == -(2**63)  # MIN / -1 wraps
    assert R[7] == -1  # low 8 bits of 0x7f..ff, sign-extended
    assert R[8] == 1  # (2^32-1 as i32 = -1) squared


def test_division_by_zero_faults(run_src):
    res = run_src("    DMOV r1, 5\n    DDIV r2, r1, r0")
    assert res.status == "fault"
    assert "division by zero" in res.fault.message
    assert (res.fault.siw, res.fault.pipe, res.fault.op) == (1, "D", "DDIV.i64")


def test_shift_counts_beyond_width():
    a = np.array([-8, 1, 0x40, -1] * 4, np.int32)
    c = np.array([1, 31, 32, 100] * 4, np.int32)
    s = run_vec({0: a, 1: c}, "    DSHL.i32 v2, v0, v1\n    DSHR.i32 v3, v0, v1\n    DSAR.i32 v4, v0, v1")
    assert list(s.view("i32")[2][:4]) == [-16, -(2**31), 0, 0]
    assert list(s.view("i32")[3][:4]) == [(2**32 - 8) >> 1, 0, 0, 0]
    assert list(s.view("i32")[4][:4]) == [-4, 0, 0, -1]


def test_min_max_zero_signs_and_nan():
    a = f32x16(-0.0, 0.0, np.nan, 1.0)
    b = f32x16(0.0, -0.0, 1.0, np.nan)
    s = run_vec({0: a, 1: b}, "    DMIN.f32 v2, v0, v1\n    DMAX.f32 v3, v0, v1")
    mn, mx = s.view("f32")[2], s.view("f32")[3]
    assert np.signbit(mn[0]) and np.signbit(mn[1])
    assert not np.signbit(mx[0]) and not np.signbit(mx[1])
    assert s.view("i32")[2].view("<u4")[2] == CANON_NAN32 and np.isnan(mn[3])
    assert np.isnan(mx[2]) and np.isnan(mx[3])


def test_reduction_order_is_the_documented_tree(run_src):
    vals = np.array([1e8, 1, -1e8, 1, 3, 1e-3, -7, 2.5, 1e7, -1e7, 4, 0.5, 1, 1, 1, 1], np.float32)
    s = run_vec({0: vals}, "    DRED.add.f32 r1, v0\n    DRED.max.f32 r2, v0\n    DRED.add.i32 r3, v0")
    x = vals.copy()
    n = 16
    while n > 1:
        n //= 2
        x[:n] = x[:n] + x[n : 2 * n]
    assert bits_f32(s.R[1]) == float(x[0])
    left_to_right = np.float32(0)
    for v in vals:
        left_to_right = np.float32(left_to_right + v)
    assert (float(x[0]), float(left_to_right)) == (-1.0, 8.5)  # the data tells the two orders apart
    assert bits_f32(s.R[2]) == 1e8
    iv = vals.view(np.int32)
    assert s.R[3] == int(np.sum(iv, dtype=np.int64).astype(np.int32))


def test_conversions():
    a = f32x16(2.5, 3.5, -2.5, np.nan, 3e9, -3e9, 1.0e-3, 127.6, -0.0)
    s = run_vec({0: a}, "    DCVT.i32.f32 v1, v0\n    DCVT.bf16.f32 v2, v0\n    DCVT.f32.bf16 v3, v2")
    assert list(s.view("i32")[1][:9]) == [2, 4, -2, -(2**31), -(2**31), -(2**31), 0, 128, 0]
    bf = s.view("bf16")[2][:16]
    assert bf[3] == 0x7FC0  # NaN
    assert (
        s.view("f32")[3][0] == 2.5 and s.view("f32")[3][7] == 127.5
    )  # 127.6 -> bf16 (8 significant bits) = 127.5


def test_narrowing_saturates_and_widening_selects_part():
    a = np.array([300, -300, 5, -5] * 4, np.int32)
    s = run_vec({0: a}, "    DCVT.i8.i32 v1, v0, 1\n    DCVT.i32.i8 v2, v1, 1")
    assert list(s.view("i8")[1][16:20]) == [127, -128, 5, -5]
    assert (s.view("i8")[1][:16] == 0).all()  # lanes outside part 1 are kept (they were 0)
    assert list(s.view("i32")[2][:4]) == [127, -128, 5, -5]


def test_ternary_dot_product_matches_numpy_including_reserved_code():
    rng = np.random.default_rng(3)
    acts = rng.integers(-128, 128, 64).astype(np.int8)
    codes = rng.integers(0, 4, 64)  # includes the reserved code 3 (= +2)
    packed = np.zeros(64, np.uint8)
    for k, c in enumerate(codes):
        packed[16 + k // 4] |= c << (2 * (k % 4))  # quarter 1
    acc = np.arange(16, dtype=np.int32)
    s = run_vec({0: acts, 1: packed, 2: acc}, "    DTERNARY v2, v0, v1, 1")
    want = acc + (acts.astype(np.int32) * (codes - 1)).reshape(16, 4).sum(1)
    assert (s.view("i32")[2] == want).all()


def test_int8_and_bf16_dot():
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, 64).astype(np.int8)
    b = rng.integers(-128, 128, 64).astype(np.int8)
    s = run_vec({0: a, 1: b}, "    DBCAST.i32 v2, 0\n    DDOT.i8 v2, v0, v1")
    assert (s.view("i32")[2] == (a.astype(np.int32) * b).reshape(16, 4).sum(1)).all()
    fa = rng.standard_normal(32).astype(np.float32)
    fb = rng.standard_normal(32).astype(np.float32)
    from vtpu_cli.core.numerics import bf16_array_to_f32, f32_array_to_bf16

    ba, bb = f32_array_to_bf16(fa), f32_array_to_bf16(fb)
    s = run_vec({0: ba, 1: bb}, "    DBCAST.f32 v2, 1.0\n    DDOT.bf16 v2, v0, v1")
    xa, xb = bf16_array_to_f32(ba), bf16_array_to_f32(bb)
    want = (np.float32(1.0) + xa[0::2] * xb[0::2]) + xa[1::2] * xb[1::2]
    assert s.view("f32")[2].tobytes() == want.astype(np.float32).tobytes()


def test_compare_select_shuffle_broadcast():
    a = f32x16(1, 2, np.nan, 4)
    b = f32x16(1, 3, 1, 0)
    idx = np.arange(16, dtype=np.int32)[::-1].copy()
    s = run_vec(
        {0: a, 1: b, 2: idx},
        """
    DCMP.lt.f32 v3, v0, v1
    DCMP.ne.f32 v4, v0, v1
    DSEL.f32 v5, v3, v0, v1
    DSHUF.f32 v6, v0, v2
    DBCAST.f32 v7, -1.5""",
    )
    assert list(s.view("i32")[3][:4]) == [0, -1, 0, 0]
    assert list(s.view("i32")[4][:4]) == [0, -1, -1, -1]  # NaN != x is true
    assert list(s.view("f32")[5][:2]) == [1.0, 2.0]
    assert s.view("f32")[6][15] == 1.0 and s.view("f32")[6][12] == 4.0
    assert (s.view("f32")[7] == -1.5).all()


def test_control_flow_loop_and_branches(run_src):
    res = run_src("""
    DMOV r1, 10
    DMOV r2, 0
top:
    DADD r2, r2, 3
    DLOOP r1, top
    DCMP.eq r3, r2, 30
    DBRT good
    DMOV r4, 111
    DHALT
good:
    DMOV r4, 222
    DHALT
    DMOV r4, 333
""")
    R = res.sentrons[0].R
    assert R[2] == 30 and R[4] == 222 and res.sentrons[0].flags & 1
    assert res.siws == 2 + 20 + 4


def test_max_steps_stops_a_runaway_loop(run_src):
    res = run_src("top:\n    DJMP top", max_steps=500)
    assert res.status == "step-limit"
    assert res.siws == 500
    assert "500" in res.fault.message


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(width=32)))
def test_f32_bits_rounds_like_numpy(x: float) -> None:
    """The scalar conversion (no numpy, so the compiler starts without it) matches numpy's float32."""
    with np.errstate(over="ignore"):
        v = np.float32(x)
    want = CANON_NAN32 if v != v else int(np.array(v, dtype="<f4").view("<u4"))
    assert f32_bits(x) == want
    for edge in (3.4028235677973366e38, -3.4028235677973366e38, 3.4028235677973362e38, 1e39, 7e-46, 5e-324):
        with np.errstate(over="ignore"):
            e = np.float32(edge)
        assert f32_bits(edge) == int(np.array(e, dtype="<f4").view("<u4")), edge


def test_the_compiler_imports_without_numpy() -> None:
    """`vtpu cc` start-up: numpy (~0.1 s) is not needed to compile."""
    import subprocess
    import sys

    code = "import sys, vtpu_cli.compiler.driver; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
