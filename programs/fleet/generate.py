"""Regenerate the generated fleet examples (deterministic data): python programs/fleet/generate.py"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(44)


def vals(a) -> str:
    return ", ".join(str(float(x)) for x in np.ravel(a))


# ------------------------------------------------------------------ scatter / compute / gather matmul
n = 16
A = rng.integers(-3, 4, (n, n)).astype(np.float32)
B = rng.integers(-3, 4, (n, n)).astype(np.float32)
L = [
    "; C = A @ B (16x16 f32) over 16 sentrons. Scatter: sentron 0 sends row i of A to sentron i.",
    "; Compute: sentron i keeps its row in a private scroll at its home coordinate and forms",
    ";          c_i = sum_k A[i,k] * B[k,:] (B is a shared read-only scroll).",
    "; Gather:  every sentron sends c_i to sentron 0, which writes row i of C. Run with --sentrons 16.",
    ".coord A = 1.1.4/1.1.1/1.1.1",
    ".coord B = 1.1.4/1.1.1/1.1.2",
    ".coord C = 1.1.4/1.1.1/1.1.3",
    f".data A f32[16, 16] {vals(A)}",
    f".data B f32[16, 16] {vals(B)}",
    ".zero C f32[16, 16]",
    ".output C",
    "    DMOV r1, sid                | SCOORD p0, A",
    "    DCMP.eq r9, r1, 0           | SCOORD p1, B",
    "    DBRF worker                 | SCOORD p2, C",
    "    DMOV r2, 15                 ; sentron 0: scatter rows 1..15",
    "    DMOV r3, 64                 ; r3: byte offset of row i in A",
    "    DMOV r4, 1                  ; r4: destination sentron",
    "scatter:",
    "                                | SGATHER.f32 v1, [p0 + r3]",
    "                                |                            | CPACK.f32 m0, v1",
    "    DADD r3, r3, 64             |                            | CSEND m0, r4",
    "    DADD r4, r4, 1",
    "    DLOOP r2, scatter",
    "                                | SGATHER.f32 v0, [p0]       ; row 0 stays here",
    "    DJMP compute",
    "worker:",
    "                                |                            | CRECV m0, 0",
    "                                |                            | CUNPACK.f32 v0, m0",
    "compute:",
    "    DMOV r5, 64                 | SCOORD p3, home",
    "                                | SALLOC p3, r5              ; a private scroll for my row",
    "                                | SSCATTR.f32 [p3], v0",
    "    DBCAST.f32 v2, 0.0          ; v2: c_i",
    "    DMOV r6, 16                 ; r6: k iterations",
    "    DMOV r7, 0                  ; r7: 4k (A[i,k]) ",
    "    DMOV r8, 0                  ; r8: 64k (row k of B)",
    "kloop:",
    "                                | SGATHER.f32 r10, [p3 + r7]",
    "    DBCAST.f32 v3, r10          | SGATHER.f32 v4, [p1 + r8]",
    "    DFMA.f32 v2, v3, v4, v2",
    "    DADD r7, r7, 4",
    "    DADD r8, r8, 64",
    "    DLOOP r6, kloop",
    "                                | SFREE p3",
    "    DCMP.eq r9, r1, 0",
    "    DBRT gather",
    "                                |                            | CPACK.f32 m1, v2",
    "                                |                            | CSEND m1, 0",
    "    DHALT",
    "gather:",
    "                                | SSCATTR.f32 [p2], v2",
    "    DMOV r2, 15                 ; receive rows 1..15 in order",
    "    DMOV r3, 64",
    "    DMOV r4, 1",
    "collect:",
    "                                |                            | CRECV m2, r4",
    "                                |                            | CUNPACK.f32 v5, m2",
    "                                | SSCATTR.f32 [p2 + r3], v5",
    "    DADD r3, r3, 64",
    "    DADD r4, r4, 1",
    "    DLOOP r2, collect",
]
(HERE / "matmul_scatter.vasm").write_text("\n".join(L) + "\n")

# ------------------------------------------------------------------ double-buffered 2-sentron pipeline
T = 12  # tiles of 16 f32
X = rng.integers(-9, 10, (T + 3, 16)).astype(np.float32)
X[T:] = 0  # three padding tiles: the prefetch of k+2 never leaves the scroll
L = [
    "; A 3-stage software pipeline on the producer (sentron 0), the double-buffer pattern of the seed:",
    ";     in one SIW, D computes tile k (y_k = 3 x_k), S fetches tile k+2, C packs tile k-1,",
    ";     and the next SIW sends it to the consumer (sentron 1), which accumulates the tiles.",
    f"; {T} tiles of 16 f32 (plus three zero padding tiles), unrolled by 6 so registers rotate",
    "; (x: v0 v1 v2, y: v3 v4, messages m0 m1). Output: r1 on sentron 1 = 3 * sum(X).",
    ".coord X = 1.1.5/1.1.1/1.1.1",
    f".data X f32[{T + 3}, 16] {vals(X)}",
    ".output r1.f32",
    "    DMOV r9, sid                | SCOORD p0, X",
    "    DCMP.eq r8, r9, 0",
    "    DBRF consumer",
    "    DBCAST.f32 v7, 3.0          | SGATHER.f32 v0, [p0]          ; prologue: x_0, x_1",
    "    DMOV r2, 128                | SGATHER.f32 v1, [p0 + 64]     ; r2: offset of tile k+2",
    f"    DMOV r3, {T // 6}                                              ; r3: groups of 6 tiles",
    "    DMUL.f32 v3, v0, v7         | SGATHER.f32 v2, [p0 + r2]     ; k = 0 (nothing to send yet)",
    "    DADD r2, r2, 64",
    "group:",
]
# steady state k = 1..T-1 in groups of 6 tiles; the first group starts at k = 1 and the last tile is
# drained in the epilogue. x_k lives in v(k%3), y_k in v(3 + k%2), messages alternate m(k%2).
body = []
for j in range(6):
    k = j + 1  # position in the group (k mod 6 == j + 1)
    xk, xk2 = f"v{k % 3}", f"v{(k + 2) % 3}"
    yk, yprev, mprev = f"v{3 + k % 2}", f"v{3 + (k - 1) % 2}", f"m{(k - 1) % 2}"
    body.append(f"    DMUL.f32 {yk}, {xk}, v7 | SGATHER.f32 {xk2}, [p0 + r2] | CPACK.f32 {mprev}, {yprev}")
    body.append(f"    DADD r2, r2, 64             |                               | CSEND {mprev}, 1")
L += body
L += [
    "    DLOOP r3, group",
    f"; the groups ran k = 1..{T}: tiles 0..{T - 1} were sent; tile {T} and the prefetches up to {T + 2}",
    "; touched only the zero padding tiles, so every access stayed inside the scroll.",
    "    DHALT",
    "consumer:",
    f"    DMOV r4, {T}",
    "    DBCAST.f32 v8, 0.0",
    "recv:",
    "                                |                               | CRECV m2, 0",
    "                                |                               | CUNPACK.f32 v9, m2",
    "    DADD.f32 v8, v8, v9",
    "    DLOOP r4, recv",
    "    DRED.add.f32 r1, v8",
]
(HERE / "pipeline.vasm").write_text("\n".join(L) + "\n")
print("matmul expected C[0,:4] =", (A @ B)[0, :4], " pipeline expected r1 =", float(3 * X[:T].sum()))
