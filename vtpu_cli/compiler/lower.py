"""Front end: checks a parsed ``.phx`` file and lowers it into level-1 IR.

Declarations are processed first (so statements may use names declared later in the file), then
statements in order. Level-1 statements lower directly through the :class:`~.ir.Builder`; level-2
tensor statements (``y = matmul(x, w)``) go to :mod:`.tensors`. Every error is collected as a
:class:`~vtpu_cli.core.errors.Diagnostic` and lowering continues, so one run reports all errors of a file.
"""

from __future__ import annotations

import difflib
import math
import weakref
from dataclasses import dataclass, field

from lark import Token, Tree

from vtpu_cli.binary.program import Imm, Reg
from vtpu_cli.compiler.ir import VI, Builder, Scroll, VReg, imm, private_coord
from vtpu_cli.core import coords
from vtpu_cli.core.errors import Diagnostic
from vtpu_cli.core.numerics import f32_bits

SCALARS = ("i64", "i32", "i16", "i8", "f32")
VECTORS = {"f32x16": "f32", "i32x16": "i32", "i16x32": "i16", "i8x64": "i8", "i64x8": "i64"}
TENSOR_DTYPES = ("f32", "i32", "i8", "t2")
ELEM_BYTES = {"f32": 4, "i32": 4, "i8": 1, "i16": 2, "i64": 8}
RESERVED_LIBRARY = 990  # libraries 990..999 are the compiler's (scratch, spill, constants)
MAX_TENSOR_BYTES = 1 << 32  # one scroll per tensor; documented in docs/phx.md
AUTO_LIBRARY = 2  # tensors declared without @ get coordinates 2.1.1/1.1.1/1.1.k


class Bad(Exception):
    """Raised to abandon the current statement after a diagnostic."""


@dataclass
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    role: str
    scroll: str
    scale: float | str = 1.0  # t2 weights: a literal or the name of an f32[1] tensor
    line: int = 0
    base_role: str = ""  # a view (role "view"): the role of the tensor it views (input/weight: read-only)
    base_name: str = ""  # ... and that tensor's name

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Var:
    type: str
    reg: object  # VReg, or a python number for a constant
    const: bool = False
    readonly: bool = False


def elem_type(t: str) -> str:
    return VECTORS.get(t, t)


def is_vec(t: str) -> bool:
    return t in VECTORS


def vec_of(t: str) -> str:
    return {"f32": "f32x16", "i32": "i32x16", "i16": "i16x32", "i8": "i8x64", "i64": "i64x8"}[t]


def imm_for(t: str, value) -> Imm:
    """A python number as an immediate of lane type t (f32: bit pattern)."""
    e = elem_type(t)
    if e == "f32":
        return imm(f32_bits(float(value)))
    return imm(int(value))


@dataclass
class SyncPath:
    """What the code on the current path has done to shared writable scrolls since the last barrier
    (multi-sentron programs only; see :class:`Sync`). ``exposed`` are the accesses made since the top of
    the innermost loop body before any barrier on this path (``open``): the next iteration's version of
    them follows the previous iteration's end with no barrier in between."""

    written: set[str]
    read: set[str]
    exposed: set[tuple[str, str]]
    open: bool = True

    def copy(self) -> SyncPath:
        return SyncPath(set(self.written), set(self.read), set(self.exposed), self.open)

    def join(self, other: SyncPath) -> None:
        """Control flow meets: anything either path may have done (may-sets: union)."""
        self.written |= other.written
        self.read |= other.read
        self.exposed |= other.exposed
        self.open = self.open or other.open


class Sync:
    """Automatic barriers for shared writable scrolls (state tensors and the exchange scrolls of
    ``shard=cols``) in programs compiled for several sentrons.

    The engines' race rule works at scroll granularity with happens-before through collectives: a scroll
    written by one sentron may be accessed by another only after a barrier both passed after the write,
    and a scroll read by some sentron may be written by another only after a barrier after the read.
    Every shared scroll has a single writer between barriers (its owner), so the only hazards are
    write-then-read and read-then-write across sentrons. The lowering calls :meth:`read` / :meth:`write`
    in program order; a ``CBAR`` is emitted right before an access that would otherwise race (and at
    the end of a loop body whose top would race with its end). Branches join by union, loops that may
    run zero times keep the state from before them: never fewer barriers than needed, rarely more."""

    def __init__(self, lw: Lowerer):
        # a proxy, not a reference: a cycle lowerer <-> sync would keep each compile's IR alive until
        # the garbage collector's next pass (inside the next compile of a process: tuner, model variants)
        self.lw = weakref.proxy(lw)
        self.path = SyncPath(set(), set(), set())
        self.barriers = 0  # CBARs this class emitted (the report counts them)

    def active(self) -> bool:
        return self.lw.sentrons > 1

    def barrier(self) -> None:
        self.lw.b.emit("CBAR", imm(0))
        self.barriers += 1
        self.synced()

    def synced(self) -> None:
        """A collective every sentron takes part in was emitted on this path."""
        p = self.path
        p.written.clear()
        p.read.clear()
        p.open = False

    def read(self, key: str) -> None:
        if not self.active():
            return
        if key in self.path.written:
            self.barrier()
        self.path.read.add(key)
        if self.path.open:
            self.path.exposed.add(("r", key))

    def write(self, key: str) -> None:
        if not self.active():
            return
        if key in self.path.read:
            self.barrier()
        self.path.written.add(key)
        if self.path.open:
            self.path.exposed.add(("w", key))

    # control flow
    def branch(self) -> SyncPath:
        """Before a branch: the state both arms start from."""
        return self.path.copy()

    def loop(self, emit_loop, body) -> None:
        """``emit_loop(fn)`` emits a loop (a DLOOP or runtime loop that may run zero times) whose body
        code ``fn()`` emits; ``body()`` is the source body. A barrier goes at the end of the body when
        an access the body makes before its first barrier would race with the body's end (the next
        trip follows it)."""
        before = self.path
        ends: list[SyncPath] = []

        def emit() -> None:  # the builder may emit the body more than once (unroll by two)
            self.path = SyncPath(set(before.written), set(before.read), set())
            body()
            end = self.path
            hazard = any(
                (k == "w" and key in end.read) or (k == "r" and key in end.written) for k, key in end.exposed
            )
            if hazard and self.active():
                self.barrier()
            ends.append(self.path)

        emit_loop(emit)
        merged = SyncPath(set(before.written), set(before.read), set(before.exposed), before.open)
        for end in ends:
            merged.written |= end.written
            merged.read |= end.read
            if before.open:
                merged.exposed |= end.exposed
        self.path = merged


# ---------------------------------------------------------------------- coordinate colouring
# The translation cache (PPT) keeps one MRU coordinate per set; the JIT serves an access from its
# fast path only while the access's coordinate is its set's MRU entry. Two scrolls of one loop whose
# coordinates share a set evict each other on every trip: each access then takes the slow path (a
# call into the LRU simulation), and the loop loses its hoisted-translation clone. The compiler
# chooses the coordinates of its own scrolls (exchange 996, constants 997, scratch 998), so it picks
# them in sets that the other scrolls of the same statements do not use -- a layer-indexed weight
# counts every layer's coordinate, since the layer loop sweeps them all.
PPT_SETS = 64  # the machine's default (machine.memory.Memory.sets); sets distinct at 64 stay
# distinct at every larger power of two (a set is the top bits of one hash)
COLOURED_LIBRARIES = (RESERVED_LIBRARY + 6, RESERVED_LIBRARY + 7, RESERVED_LIBRARY + 8)
_MASK64 = (1 << 64) - 1


def ppt_set(coord: int, sets: int) -> int:
    """The machine's translation-cache set of a packed coordinate (``machine.memory.ppt_set``, which
    tests/test_phx_speed.py checks this equals): a Fibonacci hash of the Morton key folded to 64 bits.
    Computed here because importing the memory module (numpy buffers, tiers) cost a model compile
    ~3 ms in a fresh process, for one formula."""
    return ppt_set_of_key(coords.morton_key_packed(coord), sets)


def ppt_set_of_key(key: int, sets: int) -> int:
    """:func:`ppt_set` from the coordinate's Morton key."""
    k64 = (key ^ (key >> 64)) & _MASK64
    return ((k64 * 0x9E3779B97F4A7C15) & _MASK64) >> (64 - (sets.bit_length() - 1)) if sets > 1 else 0


def private_shelf_sets(lib: int, sentrons: int, shelves: range, sets: int = 0) -> list[list[int]]:
    """Per sentron s, ``ppt_set(private_coord(s, lib, v), sets)`` for each shelf v of ``shelves``
    (default sets: ``PPT_SETS``)."""
    return shelf_sets(*shelf_keys(lib, sentrons), shelves, sets)


def shelf_keys(lib: int, sentrons: int) -> tuple[list[int], int]:
    """(Morton key of ``private_coord(s, lib, 1)`` per sentron s, the shelf step of the packing)."""
    first, step = private_shelf_coords(lib, sentrons)
    return [coords.morton_key_packed(c) for c in first], step


def shelf_sets(keys: list[int], step: int, shelves: range, sets: int = 0) -> list[list[int]]:
    """:func:`private_shelf_sets` from :func:`shelf_keys`. The Morton key spreads each part on its own
    bits, so the key of a coordinate is the OR of the keys of its parts: the key of sentron s's shelf-1
    coordinate OR the key of the shelf field alone, one OR per shelf instead of a packing and a Morton
    key."""
    sets = sets or PPT_SETS
    field_keys = [coords.morton_key_packed((v - 1) * step) for v in shelves]
    return [[ppt_set_of_key(k | fk, sets) for fk in field_keys] for k in keys]


_FIELD_FOLDS: dict[int, object] = {}  # shelf step -> the folded Morton keys of (v - 1) * step, v = 1..999


def _fold(key: int) -> int:
    return (key ^ (key >> 64)) & _MASK64


def shelf_set_matrix(keys: list[int], step: int, sets: int = 0):
    """A numpy (len(keys), 999) array: row r, column v - 1 is the PPT set of the coordinate whose
    Morton key is ``keys[r]`` OR the key of ``(v - 1) * step`` (:func:`shelf_sets` for shelves 1..999
    of every key at once). The fold to 64 bits is linear over XOR and the keys' bits are disjoint, so
    a set is the hash of ``fold(key) ^ fold(field key)``; the field keys are the XOR of the keys of the
    field's bits (a Morton key spreads each bit on its own), ten Morton keys per step (cached)."""
    import numpy as np

    sets = sets or PPT_SETS
    if sets <= 1:
        return np.zeros((len(keys), 999), dtype=np.intp)
    g = _FIELD_FOLDS.get(step)
    if g is None:
        if step > 0 and step & (step - 1) == 0:
            x = np.arange(999, dtype=np.uint64)
            g = np.zeros(999, dtype=np.uint64)
            for bit in range(10):  # 999 < 2**10
                kb = np.uint64(_fold(coords.morton_key_packed(step << bit)))
                g ^= np.where((x >> np.uint64(bit)) & np.uint64(1), kb, np.uint64(0))
        else:  # (not a bit field: key by key)
            g = np.array([_fold(coords.morton_key_packed(v * step)) for v in range(999)], dtype=np.uint64)
        _FIELD_FOLDS[step] = g
    f = np.array([_fold(k) for k in keys], dtype=np.uint64)[:, None]
    h = (f ^ g[None, :]) * np.uint64(0x9E3779B97F4A7C15)  # (wraps modulo 2**64, as the & mask does)
    return (h >> np.uint64(64 - (sets.bit_length() - 1))).astype(np.intp)


@dataclass
class RecordingBuilder(Builder):
    """A :class:`~.ir.Builder` that records, per statement, the scrolls it addresses and, per scroll,
    the instructions that put its coordinate in a p register (for :func:`colour_coordinates`).

    A statement's phases are apart: a coordinate region opened outside the statement's own loops (the
    quantisation, the weight loop, a tmatmul epilogue, each sentron's code, a gather) records its
    scrolls in a group of its own. The phases run one after the other, so two of their coordinates in
    one PPT set cost one slow translation when the next phase starts, not one per trip of a loop; a
    region opened inside one of the statement's loops stays in the enclosing group (its scrolls share
    that loop's trips)."""

    groups: list = field(default_factory=list)  # one set of scroll keys per statement phase
    group: set | None = None
    coord_defs: dict = field(default_factory=dict)  # scroll key -> [VI] (SCOORD / SINDEX.set)
    loop_depth: int = 0  # counted loops open now
    group_depth: int = 0  # counted loops open when the current group began

    def open_group(self) -> tuple:
        """Start a new group (a statement); returns what :meth:`close_group` restores."""
        outer = (self.group, self.group_depth)
        self.group = set()
        self.groups.append(self.group)
        self.group_depth = self.loop_depth
        return outer

    def close_group(self, outer: tuple) -> None:
        self.group, self.group_depth = outer

    def counted_loop(self, count, body, hint: str = "loop") -> None:
        self.loop_depth += 1
        try:
            super().counted_loop(count, body, hint)
        finally:
            self.loop_depth -= 1

    def push_region(self) -> tuple:
        saved = super().push_region()
        if self.group is not None and self.loop_depth == self.group_depth:
            return saved, self.open_group()
        return saved, None

    def pop_region(self, saved: tuple) -> None:
        inner, outer = saved
        super().pop_region(inner)
        if outer is not None:
            self.close_group(outer)

    def base(self, scroll: str) -> VReg:
        sc = self.scrolls[scroll]
        if sc.view_of is not None:
            return super().base(scroll)  # recurses into base(view_of)
        if self.group is not None:
            self.group.add(scroll)
        p = self._pcache.get(scroll)
        if p is not None:  # defined in this region already (what Builder.base returns, emitting nothing)
            return p
        code, defs = self.code, self._region_defs
        n_code, n_defs = len(code), len(defs)
        p = super().base(scroll)
        new = code[n_code:] if len(code) > n_code else []
        if defs is self._region_defs and len(defs) > n_defs:
            new += defs[n_defs:]
        if new:
            self.coord_defs.setdefault(scroll, []).extend(
                [vi for vi in new if vi.__class__ is VI and vi.op.name in ("SCOORD", "SINDEX")]
            )
        return p


def private_shelf_coords(lib: int, sentrons: int) -> tuple[list[int], int]:
    """(``private_coord(s, lib, 1)`` per sentron s, step): ``private_coord(s, lib, v)`` is
    ``first[s] + (v - 1) * step`` for every shelf v in 1..999 (the shelf part is a bit field holding
    v - 1)."""
    first = [private_coord(s, lib, 1) for s in range(sentrons)]
    return first, private_coord(0, lib, 2) - private_coord(0, lib, 1)


def _colourable(sc: Scroll) -> bool:
    if sc.layers > 1 or sc.alias is not None or sc.view_of is not None:
        return False
    if sc.private is not None:
        return sc.private[0] == RESERVED_LIBRARY + 8
    return sc.coord is not None and coords.get_part_packed(sc.coord, 0) in COLOURED_LIBRARIES


def colour_coordinates(lw: Lowerer) -> dict[str, int]:
    """Re-pick the part that numbers each compiler-chosen scroll (the shelf: ``998.k``, ``996.k``,
    ``997.k``) so that, per sentron, its PPT set is shared with as few as possible of the coordinates
    its statements also address (greedy, most-shared scrolls first; a tie keeps the number). Weights:
    a single coordinate counts once per layer trip (``lmax``), each layer of a layer-indexed stack
    once. Rewrites the scroll and the instructions that define its coordinate; returns the scrolls'
    PPT conflicts left (the cost of the choice) by key. Only the numbering changes: results do not.

    Speed: a scroll's contribution to a statement's cost (one PPT set per layer) is computed once per
    scroll, not once per statement that addresses it; a statement's fixed costs are kept sparse."""
    b = lw.b
    if not isinstance(b, RecordingBuilder):
        return {}
    ns = lw.sentrons
    scrolls = b.scrolls
    lmax = max([sc.layers for sc in scrolls.values()] + [1])
    units = [k for k, sc in scrolls.items() if k in b.coord_defs and _colourable(sc)]
    if not units:
        return {}
    unit_set = set(units)
    memo: dict[int, int] = {}

    def cset(c: int) -> int:
        v = memo.get(c)
        if v is None:
            v = memo[c] = ppt_set(c, PPT_SETS)
        return v

    contrib: dict[str, dict[int, int]] = {}  # scroll key -> {PPT set: cost} (not a unit)

    def contribution(k: str) -> dict[int, int]:
        got = contrib.get(k)
        if got is not None:
            return got
        sc = scrolls[k]
        got = contrib[k] = {}
        if sc.coord is None or sc.private is not None:
            return got
        if isinstance(sc.layer, VReg):  # a runtime layer index: every layer's coordinate
            if sc.alias in scrolls and scrolls[sc.alias].by_sentron:
                return got  # sentron s addresses layer s only: a per-sentron cost (``own`` below)
            n, w = (scrolls[sc.alias].layers if sc.alias in scrolls else sc.layers), 1
        else:
            n, w = sc.layers, (lmax if sc.layers == 1 else 1)
        for layer in range(n):
            st = cset(sc.coord + layer)
            got[st] = got.get(st, 0) + w
        return got

    # The candidate shelves 1..999 of a scroll are costed together with numpy: a coordinate whose shelf
    # is v is its shelf-1 coordinate plus (v - 1) * step, whose Morton key is the OR of the two keys
    # (disjoint bits), so the 999 PPT sets of a scroll come from one key per scroll and the folded keys
    # of the shelf field (:func:`shelf_set_matrix`); a cost row is a gather from the per-sentron cost
    # table, and the choice the first least-cost free shelf in the order (old, 1..999), as before.
    import numpy as np

    nsets = PPT_SETS
    width = ns * nsets
    row_off = np.arange(ns, dtype=np.intp)[:, None] * nsets  # flat index of (sentron, set)
    pidx: dict[int, np.ndarray] = {}  # library -> (ns, 999) flat indexes of each sentron's set per shelf

    def private_index(lib: int) -> np.ndarray:
        got = pidx.get(lib)
        if got is None:
            keys, step = shelf_keys(lib, ns)
            got = pidx[lib] = shelf_set_matrix(keys, step, nsets) + row_off
        return got

    def private_flat(lib: int, v: int) -> list[int]:
        """Flat (sentron, set) indexes of shelf v of library lib on every sentron."""
        if 1 <= v <= 999:
            return private_index(lib)[:, v - 1].tolist()
        sets = [row[0] for row in shelf_sets(*shelf_keys(lib, ns), range(v, v + 1))]
        return [s * nsets + st for s, st in enumerate(sets)]

    # the spill scroll (999.1 at the sentron's home) can be touched by any statement
    spill = [s * nsets + cset(private_coord(s, RESERVED_LIBRARY + 9, 1)) for s in range(ns)]
    fixed: list[dict[int, int]] = []  # per group: {set: cost} of its coordinates that are not re-picked
    own: list[list[int]] = []  # per group: per-sentron costs that are not re-picked (flat indexes)
    members: list[list[str]] = []
    unit_groups: dict[str, list[int]] = {k: [] for k in units}
    for g in b.groups:
        us = [k for k in g if k in unit_set]
        if not us:
            continue
        cost: dict[int, int] = {}
        mine: list[int] = []  # flat (sentron, set) indexes: each sentron's own layer of a by-sentron stack
        for k in g:
            if k in unit_set:
                continue
            for st, w in contribution(k).items():
                cost[st] = cost.get(st, 0) + w
            sc = scrolls[k]
            if isinstance(sc.layer, VReg) and sc.alias in scrolls and scrolls[sc.alias].by_sentron:
                mine += [s * nsets + cset(sc.coord + s) for s in range(ns)]
        gi = len(fixed)
        fixed.append(cost)
        own.append(mine)
        members.append(us)
        for k in us:
            unit_groups[k].append(gi)
    taken = {sc.coord + i for sc in scrolls.values() if sc.coord is not None for i in range(sc.layers)}
    shelves = {sc.private for sc in scrolls.values() if sc.private is not None}
    chosen: dict[str, list[int]] = {}  # unit -> flat (sentron, set) index per sentron
    left: dict[str, int] = {}
    order = sorted(units, key=lambda k: -len(unit_groups[k]))
    for k in order:
        sc = scrolls[k]
        base = [0] * nsets
        for gi in unit_groups[k]:
            for i, c in fixed[gi].items():
                base[i] += c
        # the per-sentron cost table, flat: the statements' fixed costs on every sentron, plus the
        # spill scroll and the units chosen so far (each time one of its statements names it)
        flat = spill[:]
        for gi in unit_groups[k]:
            flat += own[gi]
            for y in members[gi]:
                if y != k:
                    got = chosen.get(y)
                    if got is not None:
                        flat += got
        if sc.private is not None:
            table = np.tile(np.array(base, dtype=np.int64), ns)
            table += np.bincount(flat, minlength=width) * lmax
            lib, old = sc.private
            costs = table[private_index(lib)].sum(axis=0)
            best = old
            best_cost = int(costs[old - 1]) if 1 <= old <= 999 else int(table[private_flat(lib, old)].sum())
            while best_cost:  # the least cost below the old one; its first free shelf, else the next cost
                cost = int(costs.min())
                if cost >= best_cost:
                    break
                at = np.flatnonzero(costs == cost) + 1
                v = next((v for v in at.tolist() if v == old or (lib, v) not in shelves), 0)
                if v:
                    best, best_cost = v, cost
                    break
                costs = np.where(costs == cost, best_cost, costs)
            chosen[k] = private_flat(lib, best)
        else:
            old = coords.get_part_packed(sc.coord, 1)
            # the coordinate with part 1 = v is zero + (v - 1) * step (the field holds v - 1)
            zero = coords.set_part_packed(sc.coord, 1, 1)
            step = coords.set_part_packed(sc.coord, 1, 2) - zero
            # every sentron addresses the same coordinate: a set's cost is its column sum (in Python:
            # the search usually stops at a free set early)
            colsum = [c * ns for c in base]
            for f in flat:
                colsum[f % nsets] += lmax
            best, best_cost = old, colsum[cset(zero + (old - 1) * step)]
            if best_cost:
                for v in range(1, 1000):
                    c = zero + (v - 1) * step
                    if v != old and c in taken:
                        continue
                    cost = colsum[cset(c)]
                    if cost < best_cost:
                        best, best_cost = v, cost
                        if cost == 0:
                            break
            st = cset(zero + (best - 1) * step)
            chosen[k] = [s * nsets + st for s in range(ns)]
        left[k] = best_cost
        if best == old:
            continue
        if sc.private is not None:
            shelves.discard((lib, old))
            shelves.add((lib, best))
            sc.private = (lib, best)
            for vi in b.coord_defs[k]:
                if vi.op.name == "SINDEX" and vi.args[2] == imm(1) and vi.args[3] == imm(old):
                    vi.args[3] = imm(best)
        else:
            new = coords.set_part_packed(sc.coord, 1, best)
            taken.discard(sc.coord)
            taken.add(new)
            for vi in b.coord_defs[k]:
                if vi.op.name == "SCOORD" and vi.args[1] == imm(sc.coord):
                    vi.args[1] = imm(new)
            sc.coord = new
    return left


class Lowerer:
    def __init__(self, text: str, filename: str, opt: int = 2, sentrons: int = 1, tune: bool = False):
        self.text = text
        self.filename = filename
        self.lines = text.splitlines()
        self.diags: list[Diagnostic] = []
        self.b = RecordingBuilder(opt=opt, sentrons=sentrons)
        self.opt = opt
        self.sentrons = sentrons
        self.tune = tune
        self.compile_phx = None  # set by the driver: the autotuner compiles candidate tiles
        self.tensor_lowering = None  # set by the driver: the tensors module (level-2 statements)
        self.view_lowering = None  # set by the driver: the views module (slice, reshape, transpose, concat)
        self.broken: set[str] = set()  # tensors whose declaration failed (their uses are not re-reported)
        self.tensors: dict[str, Tensor] = {}
        self.coord_names: dict[str, int] = {}
        self.consts: dict[str, object] = {}
        self.scopes: list[dict[str, Var]] = [{}]
        self.kernels: list[tuple] = []  # (name, (loops, pipelined, unrolled), 0)
        self.private_count = 0
        self.auto_count = 0
        self.used_coords: dict[int, str] = {}
        self.tile_choices: dict = {}
        self.forced_tile: tuple[int, int] | None = None
        self.kernel_depth = 0
        self.view_count = 0
        self.concat_plan = None  # set by the driver: the concats whose parts are placed (concats.py)
        self.column_views = None  # set by the driver: bound column slices that stay views (colslices.py)
        self.transposed: dict = {}  # scroll key of a transposed view read in place -> its base tensor
        # column concats of several rows into a new name: their result shapes (by call node id), known
        # from an earlier lowering of the same tree / found by this one (driver._front)
        self.concat_shapes: dict[int, tuple[int, ...]] = {}
        self.concat_shapes_found: dict[int, tuple[int, ...]] = {}
        # the copies views cost (``views.note_copy``): (source line, what) -> bytes per execution
        self.view_copies: dict[tuple[int, str], int] = {}
        # the tensor op being lowered (tensors.lower_op; "concat" while a concat reads its parts): whether
        # tensor_arg may hand it a column slice read in place (views.PITCHED)
        self.lowering_op: str | None = None
        # name -> (parameters, body, how many tensors its `return` gives: 0 for none)
        self.functions: dict[str, tuple[list[str], object, int]] = {}
        self.call_stack: list[str] = []
        self.call_sites: list[tuple[str, int, int]] = []  # (function, line, column) of each active call
        # per call of a function that returns: (caller's target name tokens, the caller's bindings of
        # the parameter names, function name, (type, register) of a scalar result or None) -- what the
        # body's `return` assigns
        self.returns: list[tuple[list | None, dict, str, tuple | None]] = []
        self.force_loops = False  # lower every tensor op to loops (tests compare both lowerings)
        self.sync = Sync(self)  # barriers for shared writable scrolls (several sentrons)
        self.exchange_count = 0  # shard=cols exchange scroll sets
        # shard=cols gathers not emitted yet: (result scroll key, emit function). Consecutive sharded
        # ops share one barrier: their copies are emitted together before the next other statement,
        # any read of a pending result, and the end of every block (docs/phx.md)
        self.pending_gathers: list[tuple[str, object]] = []
        # programs with ternary matmuls (the model programs) get their compiler-chosen coordinates
        # coloured by PPT set (colour_coordinates); others keep today's numbering (and bytes)
        self.colour_coords = False

    # ------------------------------------------------------------------ diagnostics
    def error(self, node, message: str, hint: str | None = None, length: int | None = None) -> None:
        line, col, n = _pos(node)
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        note = None
        if self.call_sites and line >= 1:  # inside an inlined function body: which call
            note = ", ".join(
                f"in `{f}` called at {self.filename}:{ln}:{c}" for f, ln, c in reversed(self.call_sites)
            )
        self.diags.append(Diagnostic(message, self.filename, line, col, src, hint, length or n, note=note))

    def fail(self, node, message: str, hint: str | None = None, length: int | None = None):
        self.error(node, message, hint, length)
        raise Bad()

    # ------------------------------------------------------------------ driver
    def run(self, tree) -> None:
        items = list(tree.children)
        for it in items:
            if getattr(it, "data", None) in ("coord_decl",):
                self._guard(self.coord_decl, it)
        for it in items:
            if getattr(it, "data", None) == "const_decl":
                self._guard(self.const_decl, it)
        for it in items:
            if getattr(it, "data", None) == "tensor_decl":
                self._guard(self.tensor_decl, it)
        for it in items:
            if getattr(it, "data", None) == "fn_def":
                self._guard(self.fn_def, it)
        self.kernels.append(("main", 0, 0))
        main_start = len(self.b.code)
        for it in items:
            d = getattr(it, "data", None)
            if d in ("coord_decl", "const_decl", "tensor_decl", "fn_def") or d is None:
                continue
            if d == "kernel":
                name = str(it.children[0])
                if any(k[0] == name for k in self.kernels):
                    self.error(it.children[0], f"kernel `{name}` is defined twice")
                from vtpu_cli.compiler.ir import Label

                self.b.place(Label(f"@kernel:{name}"))
                stats0 = (self.b.loops, self.b.pipelined, self.b.unrolled)
                self.kernel_depth += 1
                try:
                    self.block(it.children[1])
                finally:
                    self.kernel_depth -= 1
                self.b.place(Label(f"@end:{name}"))
                stats1 = (self.b.loops, self.b.pipelined, self.b.unrolled)
                self.kernels.append((name, tuple(b - a for a, b in zip(stats0, stats1, strict=True)), 0))
                continue
            self.top_stmt(it)
        self.flush_gathers(region=True)
        del main_start
        if self.colour_coords and not self.diags:
            colour_coordinates(self)

    def _guard(self, fn, node) -> None:
        try:
            fn(node)
        except Bad:
            pass

    def top_stmt(self, node) -> None:
        self.b.begin_region()
        self.b.line = _pos(node)[0]
        try:
            self.stmt(node)
        except Bad:
            pass
        self.b.end_region()

    # ------------------------------------------------------------------ declarations
    def coord_decl(self, node) -> None:
        name_tok, ctok = node.children
        name = str(name_tok)
        packed = self.parse_coord(ctok)
        if name in self.coord_names:
            self.fail(name_tok, f"coordinate `{name}` is defined twice")
        self.coord_names[name] = packed

    def parse_coord(self, tok) -> int:
        try:
            c = coords.Coord.parse(str(tok))
        except coords.CoordError as e:
            col = getattr(e, "col", None)
            line, c0, _ = _pos(tok)
            src = self.lines[line - 1] if 0 < line <= len(self.lines) else None
            self.diags.append(
                Diagnostic(
                    f"bad coordinate: {e.message}",
                    self.filename,
                    line,
                    c0 + (col or 0),
                    src,
                    e.hint,
                    1 if col is not None else len(str(tok)),
                )
            )
            raise Bad() from None
        if c.library >= RESERVED_LIBRARY:
            self.fail(
                tok,
                f"coordinate {c} is in a reserved library ({RESERVED_LIBRARY}..999)",
                hint="phextcc keeps libraries 990..999 for scratch, spill and constant scrolls",
            )
        return c.pack()

    def const_decl(self, node) -> None:
        name_tok, expr = node.children
        name = str(name_tok)
        v = self.const_eval(expr)
        if name in self.consts:
            self.fail(name_tok, f"constant `{name}` is defined twice")
        self.consts[name] = v

    def const_eval(self, node):
        d = node.data
        if d == "int_lit":
            return _int(node.children[0])
        if d == "float_lit":
            return float(str(node.children[0]))
        if d == "name":
            n = str(node.children[0])
            if n in self.consts:
                return self.consts[n]
            for sc in reversed(self.scopes):
                if n in sc and sc[n].const:
                    return sc[n].reg
            self.fail(node, f"`{n}` is not a compile-time constant")
        if d == "neg":
            return -self.const_eval(node.children[0])
        if d in _FOLD:
            a, b = self.const_eval(node.children[0]), self.const_eval(node.children[1])
            try:
                return _FOLD[d](a, b)
            except (ZeroDivisionError, TypeError):
                self.fail(node, "invalid constant expression")
        self.fail(node, "expected a compile-time constant")

    def tensor_decl(self, node) -> None:
        """A declaration that fails still reserves its name, so later uses of it stay silent instead of
        each reporting a knock-on `undefined tensor`."""
        try:
            self._tensor_decl(node)
        except Bad:
            self.broken.add(str(node.children[1]))
            raise

    def known_broken(self, name: str) -> None:
        """Abandon the statement without a diagnostic when ``name`` failed to declare (already reported)."""
        if name in self.broken:
            raise Bad

    def _tensor_decl(self, node) -> None:
        role_t, name_tok, dtype_tok, shape_t, place_t, scale_t, layers_t = node.children
        role = str(role_t.children[0])
        name = str(name_tok)
        dtype = str(dtype_tok)
        if name in self.tensors or name in self.coord_names:
            self.fail(name_tok, f"`{name}` is declared twice")
        if dtype not in TENSOR_DTYPES:
            self.fail(
                dtype_tok,
                f"unsupported tensor dtype `{dtype}`",
                hint=f"tensor dtypes: {', '.join(TENSOR_DTYPES)}",
            )
        if shape_t is None:
            self.fail(name_tok, f"tensor `{name}` needs a shape, e.g. {dtype}[4, 16]")
        shape = tuple(self.dim_value(d.children[0]) for d in shape_t.children)
        for d, dn in zip(shape_t.children, shape, strict=True):
            if dn <= 0:
                self.fail(d, "tensor dimensions must be positive")
        if len(shape) > 2:
            self.fail(shape_t, "tensors have one or two dimensions")
        if dtype == "t2" and (len(shape) != 2 or role != "weight"):
            self.fail(dtype_tok, "t2 (ternary) tensors are 2-D weights: weight w: t2[K, N]")
        scale = 1.0
        if scale_t is not None:
            if dtype != "t2":
                self.fail(scale_t, "`scale` applies to t2 (ternary) weights only")
            se = scale_t.children[0]
            if se.data == "name" and str(se.children[0]) not in self.consts:
                scale = str(se.children[0])  # a one-element f32 tensor read at run time
            else:
                scale = float(self.const_eval(se))
        nbytes = tensor_nbytes(dtype, shape)
        if nbytes > MAX_TENSOR_BYTES:
            self.fail(
                shape_t,
                f"tensor `{name}` is {nbytes:,} bytes; the limit is {MAX_TENSOR_BYTES:,} (4 GiB) per tensor",
                hint="split it into several tensors (e.g. one per layer)",
            )
        line = _pos(node)[0]
        if role == "tensor" and place_t is None:
            self.new_private(name, dtype, shape, line)
            return
        if role == "tensor" and (dtype == "t2" or layers_t is not None):
            self.fail(place_t, "a state tensor (`tensor NAME: T[...] @ COORD`) is one f32/i32/i8 scroll")
        if place_t is None:
            self.auto_count += 1
            packed = coords.pack_parts((AUTO_LIBRARY, 1, 1, 1, 1, 1, 1, 1, self.auto_count))
        else:
            ref = place_t.children[0]
            if ref.type == "COORD":
                packed = self.parse_coord(ref)
            elif str(ref) in self.coord_names:
                packed = self.coord_names[str(ref)]
            else:
                self.fail(ref, f"undefined coordinate `{ref}`", hint=self.suggest(str(ref), self.coord_names))
        layers = 1
        if layers_t is not None:
            layers = self.const_eval(layers_t.children[0])
            if not isinstance(layers, int) or layers < 1:
                self.fail(layers_t, "`layers` is a positive integer constant")
            if role not in ("input", "weight"):
                self.fail(layers_t, "`layers` stacks input or weight tensors (one scroll per layer)")
            if place_t is None:
                self.auto_count += layers - 1  # the stack takes the next auto-placed scroll parts
            last = coords.get_part_packed(packed, 8)
            if last + layers - 1 > 999:
                self.fail(layers_t, f"{layers} layers from scroll part {last} run past 999")
        for layer in range(layers):
            pk = packed + layer  # the scroll part is the lowest field of a packed coordinate
            if pk in self.used_coords:
                self.fail(
                    place_t or name_tok,
                    f"`{name}` and `{self.used_coords[pk]}` are bound to the same "
                    f"coordinate {coords.format_packed(pk)}",
                )
            self.used_coords[pk] = name
        key = name
        if role == "tensor":  # a state tensor: one shared scroll at its coordinate, kept between runs
            role = "state"
        self.b.scrolls[key] = Scroll(key, dtype, shape, nbytes, coord=packed, role=role, layers=layers)
        t = Tensor(name, dtype, shape, role, key, scale, line)
        if role == "output" and self.sentrons > 1:
            # every sentron computes into a private copy; sentron 0 publishes it at the end
            wkey = "$work." + name
            self.private_count += 1
            self.b.scrolls[wkey] = Scroll(
                wkey, dtype, shape, nbytes, private=(RESERVED_LIBRARY + 8, self.private_count)
            )
            t.scroll = wkey
        self.tensors[name] = t

    def dim_value(self, tok) -> int:
        """A shape dimension: an integer literal or the name of an integer `const`."""
        if tok.type == "INT":
            return _int(tok)
        v = self.consts.get(str(tok))
        if v is None:
            self.fail(tok, f"`{tok}` is not a constant", hint=self.suggest(str(tok), self.consts))
        if not isinstance(v, int):
            self.fail(tok, f"tensor dimensions are integers; `{tok}` is {v!r}")
        return v

    def new_private(self, name: str, dtype: str, shape: tuple[int, ...], line: int = 0) -> Tensor:
        self.private_count += 1
        key = f"$t{self.private_count}.{name}"
        nbytes = tensor_nbytes(dtype, shape)
        if self.sentrons > 1:
            sc = Scroll(key, dtype, shape, nbytes, private=(RESERVED_LIBRARY + 8, self.private_count))
        else:
            sc = Scroll(
                key,
                dtype,
                shape,
                nbytes,
                coord=coords.pack_parts((RESERVED_LIBRARY + 8, self.private_count, 1, 1, 1, 1, 1, 1, 1)),
            )
        sc.role = "scratch"
        self.b.scrolls[key] = sc
        t = Tensor(name, dtype, shape, "tensor", key, 1.0, line)
        self.tensors[name] = t
        return t

    def scratch(self, hint: str, nbytes: int) -> str:
        """An anonymous private scratch scroll (returns its key)."""
        t = self.new_private("$" + hint, "i8", (max(nbytes, 1),))
        del self.tensors[t.name]
        return t.scroll

    def suggest(self, name: str, names) -> str | None:
        close = difflib.get_close_matches(name, list(names), n=1)
        return f"did you mean `{close[0]}`?" if close else None

    # ------------------------------------------------------------------ statements
    def block(self, node) -> None:
        self.scopes.append({})
        try:
            for st in node.children:
                if st is None or not hasattr(st, "data"):
                    continue
                if len(self.scopes) == 2:  # top level of a kernel: one region per statement
                    self.top_stmt(st)
                else:
                    self.b.line = _pos(st)[0]
                    try:
                        self.stmt(st)
                    except Bad:
                        pass
            # nothing pending crosses a block's end (loop back edge, branch join, kernel end)
            self.flush_gathers(region=len(self.scopes) == 2)
        finally:
            self.scopes.pop()

    def flush_gathers(self, region: bool = False) -> None:
        """Emit the pending shard=cols gathers (one barrier before the first, via Sync); ``region``:
        in a coordinate-register region of their own (outside any statement)."""
        pending, self.pending_gathers = self.pending_gathers, []
        if not pending:
            return
        nested = not region and len(self.scopes) > (2 if self.kernel_depth else 1)
        if region:
            self.b.begin_region()
        saved = self.b.push_region() if nested else None
        try:
            for _, emit in pending:
                emit()
        finally:
            if saved is not None:
                self.b.pop_region(saved)
        if region:
            self.b.end_region()

    def _defers_gathers(self, node) -> bool:
        """A statement that may run while gathers are pending: another sharded tmatmul/matmul_q8."""
        if node.data not in ("assign", "multi_assign"):
            return False
        expr = node.children[-1]
        if getattr(expr, "data", None) != "call" or str(expr.children[0]) not in ("tmatmul", "matmul_q8"):
            return False
        return any(
            a is not None and a.data == "kwarg" and str(a.children[0]) == "shard" for a in expr.children[1:]
        )

    def root_scroll(self, key: str) -> str:
        sc = self.b.scrolls.get(key)
        while sc is not None and (sc.alias or sc.view_of):
            key = sc.alias or sc.view_of
            sc = self.b.scrolls.get(key)
        return key

    def lookup(self, name: str) -> Var | None:
        for sc in reversed(self.scopes):
            if name in sc:
                return sc[name]
        return None

    def stmt(self, node) -> None:
        b = self.b
        outer = b.open_group()  # the scrolls this statement addresses (coordinate colouring)
        try:
            self._stmt(node)
        finally:
            b.close_group(outer)

    def _stmt(self, node) -> None:
        if self.pending_gathers and not self._defers_gathers(node):
            self.flush_gathers()
        d = node.data
        if d == "let_stmt":
            return self.let_stmt(node)
        if d == "assign":
            return self.assign(node)
        if d == "multi_assign":
            return self.multi_assign(node)
        if d == "for_stmt":
            return self.for_stmt(node)
        if d == "if_stmt":
            return self.if_stmt(node)
        if d == "call_stmt":
            return self.call_stmt(node.children[0])
        if d == "index_assign":
            return self.index_assign(node)
        if d == "return_stmt":
            return self.return_stmt(node)
        self.fail(node, f"unexpected statement {d}")

    def let_stmt(self, node) -> None:
        name_tok, type_tok, expr = node.children
        name = str(name_tok)
        if name in self.tensors:
            self.fail(name_tok, f"`{name}` is a tensor; a `let` declares a register variable")
        t = None
        if type_tok is not None:
            t = str(type_tok)
            if t not in SCALARS and t not in VECTORS:
                self.fail(
                    type_tok,
                    f"unknown type `{t}`",
                    hint=f"register types: {', '.join(SCALARS)}, {', '.join(VECTORS)}",
                )
        if t is None:
            t = self.infer(expr)
        reg = self.b.new("v" if is_vec(t) else "r", name)
        try:
            self.into(expr, t, reg)
        finally:
            # defined even when its initialiser failed: later uses must not cascade into more errors
            self.scopes[-1][name] = Var(t, reg)

    def infer(self, expr) -> str:
        ty, _ = self.value(expr, None)
        if ty is None:
            return "f32" if expr.data == "float_lit" or isinstance(_try_const(self, expr), float) else "i64"
        return ty

    def assign(self, node) -> None:
        name_tok, expr = node.children
        name = str(name_tok)
        if self._user_call(expr) and (name in self.tensors or self.lookup(name) is None):
            return self.call_fn_into([name_tok], expr)  # (a register variable takes a scalar result)
        if name in self.tensors or (self.lookup(name) is None and _is_tensor_op(expr)):
            return self.tensor_stmt([name_tok], expr)
        var = self.lookup(name)
        if var is None:
            self.known_broken(name)
            self.fail(
                name_tok,
                f"undefined name `{name}`",
                hint=self.suggest(name, [k for s in self.scopes for k in s] + list(self.tensors))
                or "declare it with `let`",
            )
        if var.const or var.readonly:
            self.fail(name_tok, f"`{name}` is read-only")
        self.into(expr, var.type, var.reg)

    def index_assign(self, node) -> None:
        name_tok, idx, expr = node.children
        self.check_writable(name_tok, row_write=True)
        nested = len(self.scopes) > (2 if self.kernel_depth else 1)
        saved = self.b.push_region() if nested else None
        try:
            self.tensor_lowering.write_row(self, name_tok, idx, expr)
        finally:
            if saved is not None:
                self.b.pop_region(saved)

    def multi_assign(self, node) -> None:
        *names, expr = node.children
        if self._user_call(expr):
            return self.call_fn_into(list(names), expr)
        if not _is_tensor_op(expr):
            self.fail(
                node, "multiple assignment needs a tensor op that returns several tensors (topk, quant)"
            )
        self.tensor_stmt(names, expr)

    def for_stmt(self, node) -> None:
        name_tok, lo_e, hi_e, step_e, body = node.children
        name = str(name_tok)
        step = self.const_eval(step_e) if step_e is not None else 1
        if not isinstance(step, int) or step <= 0:
            self.fail(step_e, "loop step must be a positive integer constant")
        clo, chi = _try_const(self, lo_e), _try_const(self, hi_e)
        if clo is None or chi is None:
            return self.runtime_for(name, lo_e, hi_e, step, body)
        lo, hi = clo, chi
        if not all(isinstance(v, int) for v in (lo, hi)):
            self.fail(lo_e, "loop bounds must be integers")
        trip = max(0, (hi - lo + step - 1) // step)
        if trip == 0:
            return
        unroll = self.opt >= 2 and trip <= 16
        if unroll:
            self.b.unrolled += 1
            for k in range(trip):
                self.scopes.append({name: Var("i64", lo + k * step, const=True)})
                try:
                    self.block(body)
                finally:
                    self.scopes.pop()
            return
        iv = self.b.new("r", name, nospill=True)
        self.b.emit("DMOV", iv, imm(lo))
        self.scopes.append({name: Var("i64", iv, readonly=True)})

        def body_fn():
            self.block(body)
            self.b.emit("DADD", iv, iv, imm(step), type="i64")

        try:
            self.sync.loop(lambda fn: self.b.counted_loop(trip, fn), body_fn)
        finally:
            self.scopes.pop()

    def runtime_for(self, name: str, lo_e, hi_e, step: int, body) -> None:
        """``for i in lo..hi`` with bounds from runtime scalars: trips = max(0, ceil((hi - lo) / step))
        computed at run time; the loop is skipped when it is zero (DLOOP needs at least one trip)."""
        b = self.b
        regs = []
        for e in (lo_e, hi_e):
            t, _ = self.value(e, "i64")
            if t not in (None, "i64"):
                self.fail(e, f"loop bounds are i64 scalars, found {t}")
            c = _try_const(self, e)
            if c is not None and not isinstance(c, int):
                self.fail(e, "loop bounds must be integers")
            regs.append(None if c is not None else self.reg_of(e, "i64"))
        iv = b.new("r", name, nospill=True)
        if regs[0] is None:
            b.emit("DMOV", iv, imm(_try_const(self, lo_e)))
        else:
            b.emit("DMOV", iv, regs[0])
        trips = b.new("r", "trips", nospill=True)
        hi_op = regs[1] if regs[1] is not None else imm(_try_const(self, hi_e))
        if regs[1] is None:
            b.emit("DMOV", trips, hi_op)
            b.emit("DSUB", trips, trips, iv, type="i64")
        else:
            b.emit("DSUB", trips, hi_op, iv, type="i64")
        if step > 1:
            b.emit("DADD", trips, trips, imm(step - 1), type="i64")
            b.emit("DDIV", trips, trips, imm(step), type="i64")
        flag = b.new("r")
        skip = b.label("skip")
        b.emit("DCMP", flag, trips, imm(0), type="i64", mod="gt")
        b.emit("DBRF", skip)
        self.scopes.append({name: Var("i64", iv, readonly=True)})

        def body_fn():
            self.block(body)
            b.emit("DADD", iv, iv, imm(step), type="i64")

        try:
            self.sync.loop(lambda fn: b.counted_loop(trips, fn), body_fn)
        finally:
            self.scopes.pop()
        b.place(skip)

    def if_stmt(self, node) -> None:
        a_e, op_tok, b_e, then_b, *rest = node.children
        else_t = rest[0] if rest else None
        op = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[str(op_tok)]
        ca, cb = _try_const(self, a_e), _try_const(self, b_e)
        if ca is not None and cb is not None:  # resolved at compile time
            taken = {
                "eq": ca == cb,
                "ne": ca != cb,
                "lt": ca < cb,
                "le": ca <= cb,
                "gt": ca > cb,
                "ge": ca >= cb,
            }[op]
            if taken:
                self.block(then_b)
            elif else_t is not None:
                self._else(else_t)
            return
        ta, _ = self.value(a_e, None)
        tb, _ = self.value(b_e, None)
        t = ta or tb or "i64"
        if is_vec(t):
            self.fail(a_e, "`if` compares scalars; vector compares are per lane")
        if ta and tb and ta != tb:
            self.fail(b_e, f"type mismatch in comparison: {ta} vs {tb}")
        ra = self.reg_of(a_e, t)
        bb = self.operand(b_e, t)
        flag = self.b.new("r", "cmp")
        self.b.emit("DCMP", flag, ra, bb, type=t, mod=op)
        else_l, end_l = self.b.label("else"), self.b.label("endif")
        self.b.emit("DBRF", else_l if else_t is not None else end_l)
        start = self.sync.branch()
        self.block(then_b)
        then_end, self.sync.path = self.sync.path, start.copy()
        if else_t is not None:
            self.b.emit("DJMP", end_l)
            self.b.place(else_l)
            self._else(else_t)
        self.sync.path.join(then_end)
        self.b.place(end_l)

    def _else(self, else_t) -> None:
        if else_t.data == "block":
            self.block(else_t)
        else:
            self.scopes.append({})
            try:
                self.if_stmt(else_t.children[0])
            finally:
                self.scopes.pop()

    def fn_def(self, node) -> None:
        name_tok, *params, body = node.children
        name = str(name_tok)
        params = [p for p in params if p is not None]
        if name in self.functions or name in _L1_FUNCS or name in _TENSOR_OPS:
            self.fail(name_tok, f"function `{name}` is defined twice or shadows a builtin")
        if len({str(p) for p in params}) != len(params):
            self.fail(name_tok, f"function `{name}` has two parameters with the same name")
        stmts = [st for st in body.children if st is not None and hasattr(st, "data")]
        nret = 0
        for k, st in enumerate(stmts):
            for r in _returns_in(st):
                if r is not st or k != len(stmts) - 1:
                    self.fail(r, "`return` must be the last statement of a function body")
        if stmts and stmts[-1].data == "return_stmt":
            nret = len(stmts[-1].children)
        self.functions[name] = ([str(p) for p in params], body, nret)

    def _user_call(self, expr) -> bool:
        """Whether ``expr`` calls a function the program defines (``y = f(...)``)."""
        return getattr(expr, "data", None) == "call" and str(expr.children[0]) in self.functions

    def call_fn_into(self, targets: list, call) -> None:
        """``y = f(...)`` / ``a, b = f(...)``; a failed call leaves its new names known as broken."""
        try:
            self.call_fn(call, str(call.children[0]), _args(call), targets)
        except Bad:
            self.broken.update(str(t) for t in targets if str(t) not in self.tensors)
            raise

    def call_fn(
        self, call, fname: str, args, targets: list | None = None, scalar: tuple | None = None
    ) -> None:
        """Inline a function body at the call (one copy per call site, so it may be called in a loop
        with a runtime loop variable). Tensor arguments bind the parameter names to the caller's
        tensors (``w[l]`` included); other arguments are evaluated once into scalar variables.
        Tensors the body assigns without declaring are shared by every call of the function.
        ``targets``: the caller's names for what the body's ``return`` gives (``y = f(...)``);
        ``scalar``: (type, register) of a call in an expression, which the ``return`` evaluates into."""
        params, body, nret = self.functions[fname]
        if fname in self.call_stack:
            self.fail(call, f"function `{fname}` calls itself (functions are inlined, so no recursion)")
        if len(args) != len(params):
            self.fail(call, f"{fname}() takes {len(params)} argument(s), got {len(args)}")
        if scalar is not None:
            if not nret:
                self.fail(call, f"`{fname}` returns nothing (its body has no `return`)")
            if nret > 1:
                self.fail(call, f"`{fname}` returns {nret} values; an expression takes one")
        elif targets is None and nret:
            self.fail(
                call,
                f"`{fname}` returns {nret} value(s): use {'it' if nret == 1 else 'them'}",
                hint=f"{', '.join(['y'] if nret == 1 else [f'y{k}' for k in range(nret)])} = {fname}(...)"
                + (f", or `let v: f32 = {fname}(...)` for a scalar" if nret == 1 else ""),
            )
        if targets is not None:
            if not nret:
                self.fail(call, f"`{fname}` returns nothing (its body has no `return`)")
            if nret > 1 and len(targets) != nret:
                self.fail(call, f"`{fname}` returns {nret} tensors, assigned to {len(targets)} name(s)")
            for tok in targets:
                if str(tok) not in self.tensors and self.lookup(str(tok)) is not None:
                    self.fail(tok, f"`{tok}` is a register variable; several results are tensors")
        saved_t: dict = {}
        scope: dict = {}
        bound: dict = {}  # parameter -> the caller's tensor: every argument is read before any is bound
        for p, a in zip(params, args, strict=True):
            is_tensor = (
                a.data == "index"
                or (a.data == "name" and str(a.children[0]) in self.tensors)
                or (a.data == "call" and str(a.children[0]) in VIEW_OPS)
            )
            if is_tensor:
                bound[p] = self.tensor_arg(a)
                continue
            c = _try_const(self, a)
            if c is not None:
                scope[p] = Var("i64" if isinstance(c, int) else "f32", c, const=True)
                continue
            t, _ = self.value(a, None)
            if t is None:
                t = self.infer(a)
            reg = self.b.new("v" if is_vec(t) else "r", p)
            self.into(a, t, reg)
            scope[p] = Var(t, reg, readonly=True)
        for p, t in bound.items():
            saved_t[p] = self.tensors.get(p)
            self.tensors[p] = t
        self.call_stack.append(fname)
        line, col, _ = _pos(call)
        self.call_sites.append((fname, line, col))
        self.scopes.append(scope)
        returns = targets is not None or scalar is not None
        if returns:
            self.returns.append((targets, saved_t, fname, scalar))
        line0 = self.b.line  # (the body's statements set their own lines: the caller's resumes after)
        try:
            self.block(body)
        finally:
            self.b.line = line0
            if returns:
                self.returns.pop()
            self.scopes.pop()
            self.call_stack.pop()
            self.call_sites.pop()
            for p, t in saved_t.items():
                if t is None:
                    self.tensors.pop(p, None)
                else:
                    self.tensors[p] = t

    def return_stmt(self, node) -> None:
        """``return e`` / ``return e0, e1``: the body's last statement assigns its tensors to the
        caller's names, evaluated where the body ends (parameters still bound). A tensor op (or view)
        writes straight into the caller's tensor; a bare tensor name is copied (``copy``), unless it
        already is the caller's tensor."""
        if not self.returns or not self.call_stack or self.returns[-1][2] != self.call_stack[-1]:
            self.fail(node, "`return` outside a function")
        targets, caller, fname, scalar = self.returns[-1]
        exprs = list(node.children)
        if scalar is not None:  # a call in an expression: the value into its register
            t, dst = scalar
            self.into(exprs[0], t, dst)
            return
        if len(exprs) == 1:
            pairs = [(targets, exprs[0])]
            if len(targets) > 1 and not _is_tensor_op(exprs[0]):
                self.fail(
                    exprs[0], f"`{fname}` is assigned to {len(targets)} names: return that many tensors"
                )
        else:
            pairs = [([t], e) for t, e in zip(targets, exprs, strict=True)]
        for tg, e in pairs:
            try:
                self._return_one(tg, e, caller, fname)
            except Bad:
                pass

    def _return_one(self, targets: list, expr, caller: dict, fname: str) -> None:
        """Assign one returned expression to the caller's ``targets``. A target that is also a tensor
        parameter bound to something else than the caller's tensor of that name is the caller's for the
        assignment: the expression's mentions of the parameter are renamed (``fname.param``)."""
        if getattr(expr, "data", None) == "name" and str(expr.children[0]) in self.tensors:
            if len(targets) == 1:
                mine = self.tensors[str(expr.children[0])]
                t = str(targets[0])
                theirs = caller[t] if t in caller else self.tensors.get(t)
                if theirs is mine:
                    return  # `return x` of the caller's own `x = f(x)`: nothing to do
            mine = self.tensors[str(expr.children[0])]
            self.view_lowering.note_copy(
                self,
                f"returned tensor `{expr.children[0]}` of `{fname}` copied",
                tensor_nbytes(mine.dtype, mine.shape),
            )
            expr = _renamed_call(expr, "copy")
        elif not _is_tensor_op(expr) and not self._user_call(expr):
            self.fail(
                expr,
                "assigned to a tensor: `return` a tensor op, a view or a tensor name",
                hint="a scalar result goes into a register variable: let v: f32 = f(...)",
            )
        aliases = {
            t: f"{fname}.{t}"
            for t in map(str, targets)
            if t in caller and caller[t] is not self.tensors.get(t)
        }
        expr = _renamed(expr, aliases) if aliases else expr
        if self._user_call(expr):  # `return g(...)`: g inlined, its result to the same names
            assign = lambda: self.call_fn_into(targets, expr)  # noqa: E731
        else:
            assign = lambda: self.tensor_stmt(targets, expr)  # noqa: E731
        self._with_callers_names(targets, caller, aliases, assign)

    def _with_callers_names(self, targets: list, caller: dict, aliases: dict[str, str], assign) -> None:
        """Run ``assign`` with the target names bound as the caller binds them and each aliased
        parameter reachable under its alias (``aliases``: parameter name -> alias)."""
        if not aliases:
            return assign()
        saved = {t: self.tensors.get(t) for t in aliases}
        for t, a in aliases.items():
            self.tensors[a] = self.tensors[t]
            if caller[t] is None:
                self.tensors.pop(t, None)
            else:
                self.tensors[t] = caller[t]
        try:
            assign()
        finally:
            for t, a in aliases.items():
                self.tensors.pop(a, None)
                caller[t] = self.tensors.get(t)  # (a new tensor the assignment made is the caller's)
                self.tensors[t] = saved[t]

    def call_stmt(self, call) -> None:
        fname = str(call.children[0])
        args = [a for a in call.children[1:] if a is not None]
        if fname in self.functions:
            return self.call_fn(call, fname, args)
        if fname == "store":
            if len(args) != 3:
                self.fail(call, "store(tensor, byte_offset, value) takes 3 arguments")
            t = self.tensor_arg(args[0])
            off = self.const_or_reg(args[1])
            ty, _ = self.value(args[2], None)
            if ty is None:
                self.fail(args[2], "store needs a typed value (a variable or an expression with one)")
            if t.dtype != "t2" and elem_type(ty) != t.dtype and t.dtype != "i8":
                self.fail(args[2], f"type mismatch: storing {ty} into {t.dtype} tensor `{t.name}`")
            reg = self.reg_of(args[2], ty)
            self.mem_access(True, elem_type(ty), reg, t, off, args[1])
            return
        if fname == "barrier":
            self.b.emit("CBAR", imm(0))
            self.sync.synced()
            return
        self.fail(
            call,
            f"`{fname}(...)` is not a statement",
            hint="statements: let, assignment, for, if, store(...), barrier()",
        )

    def mem_access(self, store: bool, t: str, reg, tensor: Tensor, off, node) -> None:
        size = 64 if reg.cls == "v" else ELEM_BYTES[t]
        sc = self.b.scrolls[tensor.scroll]
        if self.state_key(tensor) is not None and self.sentrons > 1:
            if store:
                self.fail(
                    node,
                    f"`{tensor.name}` is a state tensor: with several sentrons it is written only by "
                    f"row writes `{tensor.name}[row] = x` (sentron 0 writes)",
                )
            self.note_read(tensor)
        if isinstance(off, int):
            if off < 0 or off + size > sc.nbytes:
                self.fail(
                    node, f"offset {off} (+{size} bytes) is outside `{tensor.name}` ({sc.nbytes} bytes)"
                )
            if store:
                self.b.store(t, reg, tensor.scroll, off)
            else:
                self.b.load(t, reg, tensor.scroll, off)
        else:
            if store:
                self.b.store(t, reg, tensor.scroll, 0, rel=off)
            else:
                self.b.load(t, reg, tensor.scroll, 0, rel=off)

    def tensor_arg(self, node):
        if node.data == "index":
            return self.layer_view(node)
        if node.data == "call" and str(node.children[0]) in VIEW_OPS:
            t = self.view_lowering.operand(self, node)
            self.note_read(t)
            return t
        if node.data != "name":
            if node.data == "call" and (str(node.children[0]) in _TENSOR_OPS or self._user_call(node)):
                self.fail(
                    node,
                    "expected a tensor name: tensor ops and functions do not nest",
                    hint=f"assign it first: t = {node.children[0]}(...)",
                )
            self.fail(node, "expected a tensor name")
        n = str(node.children[0])
        t = self.tensors.get(n)
        if t is None:
            self.known_broken(n)
            self.fail(node, f"undefined tensor `{n}`", hint=self.suggest(n, self.tensors))
        sc = self.b.scrolls.get(t.scroll)
        if sc is not None and sc.layers > 1:
            self.fail(node, f"`{n}` has {sc.layers} layers; select one: {n}[layer]")
        self.note_read(t)
        if sc is not None and sc.pitch and not self.view_lowering.reads_rows_apart(self.lowering_op):
            return self.view_lowering.dense(self, t)
        return t

    def state_key(self, t: Tensor) -> str | None:
        """The scroll key of a state tensor that ``t`` is or views (None for anything else)."""
        if t.role == "state":
            return t.scroll
        if t.role == "view" and t.base_role == "state":
            return self.tensors[t.base_name].scroll
        return None

    def note_read(self, t: Tensor) -> None:
        """An operand read: a state tensor another sentron may have written needs a barrier first; a
        result whose gather is pending is gathered first."""
        if self.pending_gathers:
            root = self.root_scroll(t.scroll)
            if any(self.root_scroll(k) == root for k, _ in self.pending_gathers):
                self.flush_gathers()
        key = self.state_key(t)
        if key is not None:
            self.sync.read(key)

    def layer_view(self, node) -> Tensor:
        """``w[l]``: layer l of a tensor declared with ``layers L`` -- the scroll whose coordinate is
        the base coordinate with its scroll part advanced by l (SINDEX.add on a runtime l)."""
        name_tok, idx = node.children
        n = str(name_tok)
        t = self.tensors.get(n)
        if t is None:
            self.known_broken(n)
            self.fail(name_tok, f"undefined tensor `{n}`", hint=self.suggest(n, self.tensors))
        base = self.b.scrolls[t.scroll]
        if base.layers <= 1:
            self.fail(node, f"`{n}` is not a stack of layers (declare it with `layers L`)")
        c = _try_const(self, idx)
        self.view_count += 1
        key = f"{n}@{self.view_count}"
        if c is not None:
            if not isinstance(c, int) or not 0 <= c < base.layers:
                self.fail(idx, f"layer index {c!r} is outside 0..{base.layers - 1}")
            sc = Scroll(key, t.dtype, t.shape, base.nbytes, coord=base.coord + c, role=t.role, alias=t.scroll)
            sc.layer = c
            self.b.scrolls[key] = sc
        else:
            ty, _ = self.value(idx, "i64")
            if ty != "i64":
                self.fail(idx, f"a layer index is an i64 scalar, found {ty}")
            reg = self.reg_of(idx, "i64")
            sc = Scroll(key, t.dtype, t.shape, base.nbytes, coord=base.coord, role=t.role, alias=t.scroll)
            sc.layer = reg
            self.b.scrolls[key] = sc
            self.b.base(key)
        return Tensor(f"{n}[{'l' if c is None else c}]", t.dtype, t.shape, t.role, key, t.scale, t.line)

    def const_or_reg(self, node):
        c = _try_const(self, node)
        if c is not None:
            if not isinstance(c, int):
                self.fail(node, "byte offsets are integers")
            return c
        t, _ = self.value(node, "i64")
        if t not in ("i64", "i32"):
            self.fail(node, f"byte offsets are integers, found {t}")
        return self.reg_of(node, t)

    # ------------------------------------------------------------------ expressions
    def value(self, node, want: str | None):
        """Type of an expression without emitting code: (type or None for an untyped literal, const)."""
        d = node.data
        if d in ("int_lit", "float_lit"):
            return None, None
        if d == "name":
            n = str(node.children[0])
            v = self.lookup(n)
            if v is not None:
                return (None if v.const else v.type), None
            if n in self.consts:
                return None, None
            if n in self.tensors:
                self.fail(
                    node, f"tensor `{n}` used as a value", hint="read it with load(tensor, byte_offset)"
                )
            if n in _L1_FUNCS or n in _TENSOR_OPS:
                self.fail(node, f"`{n}` is a function, not a value", hint=f"call it: {n}(...)")
            self.known_broken(n)
            self.fail(
                node,
                f"undefined name `{n}`",
                hint=self.suggest(n, [k for s in self.scopes for k in s] + list(self.consts)),
            )
        if d == "neg":
            return self.value(node.children[0], want)
        if d in _FOLD:
            ta, _ = self.value(node.children[0], want)
            tb, _ = self.value(node.children[1], want)
            if ta and tb and ta != tb:
                if is_vec(ta) and tb == elem_type(ta) or is_vec(tb) and ta == elem_type(tb):
                    self.fail(
                        node, f"type mismatch: {ta} and {tb}", hint="broadcast the scalar with bcast(x)"
                    )
                self.fail(node, f"type mismatch: {ta} and {tb}")
            return ta or tb, None
        if d == "call":
            return self.call_type(node, want), None
        self.fail(node, "unsupported expression")

    def call_type(self, node, want):
        fname = str(node.children[0])
        args = [a for a in node.children[1:] if a is not None]
        if fname in ("fma", "min", "max"):
            ts = [self.value(a, want)[0] for a in args]
            ts = [t for t in ts if t]
            if ts and any(t != ts[0] for t in ts):
                self.fail(node, f"type mismatch in {fname}: {', '.join(ts)}")
            return ts[0] if ts else want
        if fname == "sqrt":
            return self.value(args[0], want)[0] if args else want
        if fname in ("sum", "rmax", "rmin"):
            t = self.value(args[0], None)[0] if args else None
            return elem_type(t) if t else None
        if fname == "bcast":
            t = self.value(args[0], None)[0] if args else None
            if t is None:
                return want
            return vec_of(t) if not is_vec(t) else t
        if fname == "load":
            if want is not None:
                return want
            if args and args[0].data == "name" and str(args[0].children[0]) in self.tensors:
                dt = self.tensors[str(args[0].children[0])].dtype
                return vec_of(dt if dt != "t2" else "i8")
            return None
        if fname in ("sid", "scount"):
            return "i64"
        if fname in SCALARS or fname in VECTORS:
            return fname
        if fname in self.functions:
            if want is None:
                self.fail(
                    node,
                    f"the type of `{fname}(...)` is not inferred",
                    hint=f"give the variable a type: let v: f32 = {fname}(...)",
                )
            return want
        if _TENSOR_OPS.__contains__(fname):
            self.fail(node, f"tensor op `{fname}` must be assigned to a tensor: y = {fname}(...)")
        self.fail(
            node, f"unknown function `{fname}`", hint=self.suggest(fname, list(_L1_FUNCS) + list(_TENSOR_OPS))
        )

    def operand(self, node, t: str):
        """A register or an immediate of type t."""
        c = _try_const(self, node)
        if c is not None:
            self.check_literal(node, c, t)
            return imm_for(t, c)
        return self.reg_of(node, t)

    def check_literal(self, node, c, t: str) -> None:
        e = elem_type(t)
        if e != "f32" and isinstance(c, float):
            self.fail(node, f"float literal in an integer ({t}) context")

    def reg_of(self, node, t: str):
        """Evaluate into a register of type t (reusing a variable's register when possible)."""
        if node.data == "name":
            v = self.lookup(str(node.children[0]))
            if v is not None and not v.const:
                if v.type != t:
                    self.fail(node, f"type mismatch: `{node.children[0]}` is {v.type}, expected {t}")
                return v.reg
        reg = self.b.new("v" if is_vec(t) else "r")
        self.into(node, t, reg)
        return reg

    def into(self, node, t: str, dst) -> None:
        """Evaluate ``node`` as type t into register ``dst``."""
        b = self.b
        c = _try_const(self, node)
        if c is not None:
            self.check_literal(node, c, t)
            if is_vec(t):
                b.emit("DBCAST", dst, imm_for(t, c), type=elem_type(t))
            else:
                b.emit("DMOV", dst, imm_for(t, c), type="f32" if t == "f32" else None)
            return
        d = node.data
        if d == "name":
            v = self.lookup(str(node.children[0]))
            if v is None:
                self.value(node, t)  # reports the undefined name / tensor used as a value
                self.fail(node, f"`{node.children[0]}` is not a value")
            src = self.reg_of(node, t)
            if src is not dst:
                b.emit("DMOV", dst, src)
            return
        if d == "neg":
            inner = node.children[0]
            if elem_type(t) == "f32":
                src = self.reg_of(inner, t)
                it = "i32" if is_vec(t) else "i64"
                b.emit("DXOR", dst, src, imm(0x80000000 if is_vec(t) else 0x80000000), type=it)
            else:
                src = self.reg_of(inner, t)
                b.emit("DMUL", dst, src, imm(-1), type=elem_type(t))
            return
        if d in _FOLD:
            ty, _ = self.value(node, t)
            if ty is not None and ty != t:
                self.fail(node, f"type mismatch: expression is {ty}, expected {t}")
            return self.binop(node, t, dst)
        if d == "call":
            return self.call(node, t, dst)
        self.fail(node, "unsupported expression")

    def binop(self, node, t: str, dst) -> None:
        b = self.b
        d = node.data
        a_e, b_e = node.children
        e = elem_type(t)
        opname = _BINOPS[d]
        if e == "f32" and d in ("mod", "shl", "shr", "band", "bor", "bxor"):
            self.fail(node, f"operator `{_SYM[d]}` needs an integer type, found {t}")
        ca = _try_const(self, a_e)
        if ca is not None and d in ("add", "mul", "band", "bor", "bxor"):
            a_e, b_e = b_e, a_e
        ra = self.reg_of(a_e, t)
        rb = self.operand(b_e, t)
        if d == "mod":
            q = b.new(dst.cls)
            b.emit("DDIV", q, ra, rb, type=e)
            b.emit("DMUL", q, q, rb, type=e)
            b.emit("DSUB", dst, ra, q, type=e)
            return
        b.emit(opname, dst, ra, rb, type=e)

    def call(self, node, t: str, dst) -> None:
        b = self.b
        fname = str(node.children[0])
        args = [a for a in node.children[1:] if a is not None]
        if fname in self.functions:  # a function the program defines: inlined, its `return` into dst
            return self.call_fn(node, fname, args, scalar=(t, dst))
        e = elem_type(t)

        def need(n):
            if len(args) != n:
                self.fail(node, f"{fname}() takes {n} argument{'s' if n != 1 else ''}, got {len(args)}")

        if fname == "fma":
            need(3)
            b.emit(
                "DFMA",
                dst,
                self.reg_of(args[0], t),
                self.reg_of(args[1], t),
                self.operand(args[2], t),
                type=e,
            )
        elif fname in ("min", "max"):
            need(2)
            b.emit(
                "DMIN" if fname == "min" else "DMAX",
                dst,
                self.reg_of(args[0], t),
                self.operand(args[1], t),
                type=e,
            )
        elif fname == "sqrt":
            need(1)
            if e != "f32":
                self.fail(node, f"sqrt needs f32, found {t}")
            b.emit("DSQRT", dst, self.reg_of(args[0], t), type="f32")
        elif fname in ("sum", "rmax", "rmin"):
            need(1)
            vt = self.value(args[0], None)[0]
            if vt is None or not is_vec(vt):
                self.fail(args[0], f"{fname}() reduces a vector")
            if elem_type(vt) != t:
                self.fail(node, f"type mismatch: {fname} of {vt} is {elem_type(vt)}, expected {t}")
            b.emit(
                "DRED",
                dst,
                self.reg_of(args[0], vt),
                type=t,
                mod={"sum": "add", "rmax": "max", "rmin": "min"}[fname],
            )
        elif fname == "bcast":
            need(1)
            if not is_vec(t):
                self.fail(node, f"bcast() makes a vector, expected {t}")
            c = _try_const(self, args[0])
            if c is not None:
                b.emit("DBCAST", dst, imm_for(t, c), type=e)
            else:
                b.emit("DBCAST", dst, self.reg_of(args[0], e), type=e)
        elif fname == "load":
            need(2)
            tensor = self.tensor_arg(args[0])
            off = self.const_or_reg(args[1])
            self.mem_access(False, e, dst, tensor, off, args[1])
        elif fname in ("sid", "scount"):
            need(0)
            if t != "i64":
                self.fail(node, f"{fname}() is i64")
            b.emit("DMOV", dst, Reg("s", 0 if fname == "sid" else 1))
        elif fname in SCALARS or fname in VECTORS:
            need(1)
            if fname != t:
                self.fail(node, f"type mismatch: {fname}(...) is {fname}, expected {t}")
            st = self.value(args[0], None)[0]
            if st is None:
                return self.into(args[0], t, dst)
            if is_vec(st) != is_vec(t) or (
                is_vec(t) and 64 // ELEM_BYTES[elem_type(st)] != 64 // ELEM_BYTES[e]
            ):
                self.fail(node, f"cannot convert {st} to {t} (same lane count only)")
            src = self.reg_of(args[0], st)
            if st == t:
                b.emit("DMOV", dst, src)
            else:
                b.emit("DCVT", dst, src, None, type=e, type2=elem_type(st))
        else:
            self.call_type(node, t)
            self.fail(node, f"`{fname}` cannot be used here")

    # ------------------------------------------------------------------ level 2
    def tensor_stmt(self, name_toks, expr) -> None:
        if expr.data != "call":
            self.fail(expr, "a tensor is assigned from a tensor op, e.g. y = matmul(x, w)")
        fname = str(expr.children[0])
        if fname not in _TENSOR_OPS:
            self.fail(expr, f"unknown tensor op `{fname}`", hint=self.suggest(fname, _TENSOR_OPS))
        if fname not in VIEW_OPS:  # `v = slice(...)` rebinds a view name; anything else writes through it
            for tok in name_toks:
                self.check_writable(tok)
        views = self.view_lowering
        nested = len(self.scopes) > (2 if self.kernel_depth else 1)
        saved = self.b.push_region() if nested else None
        temps: list[str] = []
        try:
            if fname in VIEW_OPS:
                views.assign(self, name_toks, expr)
            else:
                fname, expr = views.resolve_args(self, fname, expr, temps, name_toks)
                views.check_overlap(self, name_toks, fname, expr)
                self.tensor_lowering.lower_op(self, fname, name_toks, expr)
        except Bad:
            # a new name the failed statement would have made: its later uses are not re-reported
            self.broken.update(str(t) for t in name_toks if str(t) not in self.tensors)
            raise
        finally:
            for t in temps:
                self.tensors.pop(t, None)
            if saved is not None:
                self.b.pop_region(saved)

    def check_writable(self, tok, row_write: bool = False) -> None:
        """A view of an input or weight tensor is read-only, like the tensor itself. With several
        sentrons a state tensor is written only by row writes (``t[row] = x``, done by sentron 0), so
        that it has a single writer between barriers."""
        t = self.tensors.get(str(tok))
        if t is not None and t.role == "view" and t.base_role in ("input", "weight"):
            self.fail(tok, f"cannot assign to `{tok}`: it is a view of {t.base_role} tensor `{t.base_name}`")
        if t is not None and not row_write and self.sentrons > 1 and self.state_key(t) is not None:
            self.fail(
                tok,
                f"`{tok}` is a state tensor: with several sentrons it is written only by row writes "
                f"`{t.base_name or tok}[row] = x` (sentron 0 writes, then a barrier)",
            )


# ---------------------------------------------------------------------- helpers
_FOLD = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: _idiv(a, b) if isinstance(a, int) and isinstance(b, int) else a / b,
    "mod": lambda a, b: a % b,
    "shl": lambda a, b: a << b,
    "shr": lambda a, b: a >> b,
    "band": lambda a, b: a & b,
    "bor": lambda a, b: a | b,
    "bxor": lambda a, b: a ^ b,
}
_BINOPS = {
    "add": "DADD",
    "sub": "DSUB",
    "mul": "DMUL",
    "div": "DDIV",
    "mod": "DDIV",
    "shl": "DSHL",
    "shr": "DSAR",
    "band": "DAND",
    "bor": "DOR",
    "bxor": "DXOR",
}
_SYM = {"mod": "%", "shl": "<<", "shr": ">>", "band": "&", "bor": "|", "bxor": "^"}
_L1_FUNCS = (
    ("fma", "min", "max", "sqrt", "sum", "rmax", "rmin", "bcast", "load", "store", "sid", "scount", "barrier")
    + SCALARS
    + tuple(VECTORS)
)
_TENSOR_OPS = (
    "matmul",
    "tmatmul",
    "add",
    "sub",
    "mul",
    "relu",
    "relu2",
    "silu",
    "rmsnorm",
    "softmax",
    "embed",
    "argmax",
    "topk",
    "sample",
    "allreduce",
    "broadcast",
    "copy",
    "exp",
    "rope",
    "attend",
    "matmul_nt",
    "matmul_q8",
    "quant",
    "slice",
    "reshape",
    "transpose",
    "concat",
)
VIEW_OPS = ("slice", "reshape", "transpose", "concat")  # tensor views: vtpu_cli/compiler/views.py


def _idiv(a: int, b: int) -> int:
    """Integer division truncating toward zero (like DDIV)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _args(call) -> list:
    return [a for a in call.children[1:] if a is not None]


def _returns_in(node) -> list:
    """The ``return`` statements in a statement (itself, or nested in its blocks; not in expressions)."""
    if not isinstance(node, Tree):
        return []
    if node.data == "return_stmt":
        return [node]
    if node.data in ("for_stmt", "if_stmt", "if_block", "block"):
        return [r for ch in node.children for r in _returns_in(ch)]
    return []


def _renamed(node, names: dict[str, str]):
    """A copy of an expression tree whose ``name`` / ``index`` nodes mentioning ``names`` use the new
    names (the tokens keep their positions, so diagnostics still point at the source)."""
    if not isinstance(node, Tree):
        return node
    kids = list(node.children)
    if node.data in ("name", "index") and str(kids[0]) in names:
        kids[0] = Token.new_borrow_pos("NAME", names[str(kids[0])], kids[0])
    kids = (
        [kids[0], *(_renamed(c, names) for c in kids[1:])]
        if node.data in ("name", "index", "call")
        else [_renamed(c, names) for c in kids]
    )
    return Tree(node.data, kids, node.meta)


def _renamed_call(arg, op: str):
    """``op(arg)`` as a call tree placed where ``arg`` is."""
    tok = arg.children[0]
    return Tree("call", [Token.new_borrow_pos("NAME", op, tok), arg], arg.meta)


def _is_tensor_op(expr) -> bool:
    return getattr(expr, "data", None) == "call" and str(expr.children[0]) in _TENSOR_OPS


def _try_const(lw: Lowerer, node):
    d = node.data
    if d == "int_lit":
        return _int(node.children[0])
    if d == "float_lit":
        return float(str(node.children[0]))
    if d == "name":
        n = str(node.children[0])
        v = lw.lookup(n)
        if v is not None:
            return v.reg if v.const else None
        return lw.consts.get(n)
    if d == "neg":
        c = _try_const(lw, node.children[0])
        return -c if c is not None else None
    if d in _FOLD:
        a = _try_const(lw, node.children[0])
        if a is None:
            return None
        b = _try_const(lw, node.children[1])
        if b is None:
            return None
        try:
            return _FOLD[d](a, b)
        except (ZeroDivisionError, TypeError):
            return None
    return None


def _int(tok) -> int:
    s = str(tok).replace("_", "")
    return int(s, 0) if s[:2].lower() in ("0x", "0b") else int(s)


def _pos(node) -> tuple[int, int, int]:
    """(line, col, length) of a token or tree."""
    from lark import Token

    if isinstance(node, Token):
        return node.line or 0, node.column or 0, max(len(str(node)), 1)
    meta = getattr(node, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return 0, 0, 1
    n = meta.end_pos - meta.start_pos if meta.end_line == meta.line else 1
    return meta.line, meta.column, max(n, 1)


def tensor_nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    if dtype == "t2":
        k, n = shape
        return ((n + 15) // 16) * ((k + 15) // 16) * 64
    return math.prod(shape) * ELEM_BYTES[dtype]
