"""Regenerate the memory example programs (deterministic data): python programs/memory/generate.py"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(2026)


def coord(k: int, chapter: int = 1) -> str:
    """Row k of a table whose row 0 is 1.1.2/1.1.1/<chapter>.1.1 (what SINDEX.carry along the scroll gives)."""
    return f"1.1.2/1.1.1/{chapter}.{1 + k // 999}.{1 + k % 999}"


def fmt(a) -> str:
    return ", ".join(str(float(x)) if a.dtype.kind == "f" else str(int(x)) for x in a)


# --- row-major walk: an 64x64 f32 matrix stored one row per scroll, summed 8 times (row by row)
rows, cols, passes = 64, 64, 8
m = rng.integers(-4, 5, (rows, cols)).astype(np.float32)
lines = [
    f"; Row-major walk over a {rows}x{cols} f32 matrix stored one row per scroll ({rows} scrolls),",
    f"; repeated {passes} times (think: the same weight rows for {passes} tokens). Output: the total sum",
    f"; of all passes = {float(m.sum()) * passes}. Structured access: the PPT hit rate is high.",
    ".coord ROW0 = " + coord(0),
    ".output r9.f32",
]
for r in range(rows):
    lines.append(f".data {coord(r)} f32[{cols}] {fmt(m[r])}")
lines += [
    "    DBCAST.f32 v8, 0.0",
    f"    DMOV r1, {passes}                 ; r1: passes left",
    "pass:",
    f"    DMOV r2, {rows}                 | SCOORD p0, ROW0   ; r2: rows left, p0: row cursor",
    "row:",
    "    SGATHER.f32 v0, [p0]",
    "    SGATHER.f32 v1, [p0 + 64]   | DADD.f32 v8, v8, v0",
    "    SGATHER.f32 v2, [p0 + 128]  | DADD.f32 v8, v8, v1",
    "    SGATHER.f32 v3, [p0 + 192]  | DADD.f32 v8, v8, v2",
    "    SINDEX.carry p0, p0, 8, 1   | DADD.f32 v8, v8, v3",
    "    DLOOP r2, row",
    "    DLOOP r1, pass",
    "    DRED.add.f32 r9, v8",
]
(HERE / "row_walk.vasm").write_text("\n".join(lines) + "\n")

# --- random access: 1024 scrolls of 64 bytes, 4096 LCG-chosen loads
n, loads = 1024, 4096
lines = [
    f"; Random access: {loads} loads from {n} scrolls chosen by a linear congruential generator.",
    "; The working set is 4x the PPT cache (64 sets x 4 ways), so the hit rate is honestly low.",
    ".coord T0 = " + coord(0, 2),
    ".output r9",
]
for k in range(n):
    lines.append(f".data {coord(k, 2)} i32[16] {k}, " + ", ".join("0" for _ in range(15)))
lines += [
    f"    DMOV r1, {loads}                 | SCOORD p0, T0    ; r1: loads left",
    "    DMOV r3, 12345              ; r3: LCG state",
    "    DMOV r9, 0                  ; r9: checksum of the loaded row ids",
    "next:",
    "    DMUL r3, r3, 1103515245",
    "    DADD r3, r3, 12345",
    "    DAND r3, r3, 0x7fffffff",
    "    DSHR r4, r3, 16",
    f"    DAND r4, r4, {n - 1}",
    "    SINDEX.carry p1, p0, 8, r4",
    "    SGATHER.i32 r5, [p1]",
    "    DADD r9, r9, r5",
    "    DLOOP r1, next",
]
(HERE / "random_access.vasm").write_text("\n".join(lines) + "\n")
x, total = 12345, 0
for _ in range(loads):
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    total += (x >> 16) & (n - 1)
print("random_access expected r9 =", total)

# --- embedding lookup with SDEDUP: 16 token ids (with repeats) into a 256-row table (one row per scroll)
vocab, dim = 256, 16
table = rng.standard_normal((vocab, dim)).astype(np.float32)
tokens = rng.choice(rng.integers(0, vocab, 6), 16).astype(np.int32)
out = table[tokens]
lines = [
    f"; Embedding lookup with SDEDUP: {len(tokens)} token ids ({len(set(tokens.tolist()))} distinct) gather rows",
    f"; of a {vocab}x{dim} f32 table stored one row per scroll. Each distinct row is fetched once, then",
    "; expanded through the inverse map. Output: the 16x16 embeddings in scroll OUT.",
    ".coord E0 = " + coord(0, 3),
    ".coord TOK = 1.1.3/1.1.1/1.1.1",
    ".coord UNIQ = 1.1.3/1.1.1/1.1.2",
    ".coord ROWS = 1.1.3/1.1.1/1.1.3",
    ".coord OUT = 1.1.3/1.1.1/1.1.4",
    f".data TOK i32[16] {fmt(tokens)}",
    ".zero UNIQ i32[32]",
    f".zero ROWS f32[{16 * dim}]",
    f".zero OUT f32[16, {dim}]",
    ".output OUT",
]
for k in range(vocab):
    lines.append(f".data {coord(k, 3)} f32[{dim}] " + ", ".join(repr(float(v)) for v in table[k]))
lines += [
    "    SCOORD p0, TOK",
    "    SGATHER.i32 v0, [p0]        | DMOV r2, 0      ; v0: token ids",
    "    SDEDUP v1, v2, r1, v0       ; v1: distinct ids, v2: inverse map, r1: count",
    "    SCOORD p1, UNIQ",
    "    SSCATTR.i32 [p1], v1        | DMOV r6, 0",
    "    SSCATTR.i32 [p1 + 64], v2   | DMOV r3, 0      ; r3: byte offset into ROWS",
    "    SCOORD p2, E0",
    "    SCOORD p3, ROWS",
    "fetch:                          ; for each distinct id: ROWS[k] = table row id",
    "    SGATHER.i32 r4, [p1 + r2]",
    "    SINDEX.carry p4, p2, 8, r4  | DADD r2, r2, 4",
    "    SGATHER.f32 v3, [p4]",
    "    SSCATTR.f32 [p3 + r3], v3",
    "    DADD r3, r3, 64",
    "    DLOOP r1, fetch",
    "    SCOORD p5, OUT              | DMOV r1, 16",
    "    DMOV r2, 64                 ; r2: offset of the inverse map in UNIQ",
    "expand:                         ; OUT[i] = ROWS[inv[i]]",
    "    SGATHER.i32 r4, [p1 + r2]",
    "    DMUL r4, r4, 64",
    "    DADD r2, r2, 4",
    "    SGATHER.f32 v4, [p3 + r4]",
    "    SSCATTR.f32 [p5 + r6], v4",
    "    DADD r6, r6, 64",
    "    DLOOP r1, expand",
]
(HERE / "embedding_dedup.vasm").write_text("\n".join(lines) + "\n")
np.save(HERE / "embedding_expected.npy", out) if False else None
print("embedding tokens", tokens.tolist())
