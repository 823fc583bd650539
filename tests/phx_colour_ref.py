"""The coordinate colouring of ``vtpu_cli/compiler/lower.py`` as it was before session 8 (candidate
shelves costed in chunks of 64 with ``itemgetter``), kept verbatim as the reference the numpy
colouring must match choice for choice (tests/test_phx_speed_s8.py)."""

# ruff: noqa
from __future__ import annotations

from operator import getitem, itemgetter

from vtpu_cli.compiler.ir import VReg, imm, private_coord
from vtpu_cli.compiler.lower import (
    PPT_SETS,
    RESERVED_LIBRARY,
    RecordingBuilder,
    _colourable,
    coords,
    ppt_set,
    shelf_keys,
    shelf_sets,
)

_CHUNK = 64  # candidate shelves costed together by the colouring


def colour_coordinates(lw) -> dict[str, int]:
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

    # a private scroll's PPT sets per candidate shelf, per sentron: shared by every scroll of its
    # library (each scroll tries up to 999 shelves). The coordinate is linear in the shelf (its field
    # holds shelf - 1, and 1..999 never carries), so it is base + (shelf - 1) * step, computed without
    # packing (tests/test_phx_speed_s7.py checks this equals private_coord)
    psets: dict[tuple[int, int], list[int]] = {}
    pkeys: dict[int, tuple[list[int], int]] = {}

    def keys_of(lib: int) -> tuple[list[int], int]:
        got = pkeys.get(lib)
        if got is None:
            got = pkeys[lib] = shelf_keys(lib, ns)
        return got

    def private_sets(lib: int, v: int) -> list[int]:
        got = psets.get((lib, v))
        if got is None:
            got = psets[(lib, v)] = [row[0] for row in shelf_sets(*keys_of(lib), range(v, v + 1))]
        return got

    pchunks: dict[tuple[int, int], list] = {}

    def private_chunk(lib: int, v: int) -> list:
        """Per sentron, an ``itemgetter`` of the PPT sets of shelves v .. v + _CHUNK - 1 (at most 999):
        applied to the sentron's cost row it gives those shelves' costs as a tuple."""
        got = pchunks.get((lib, v))
        if got is None:
            # (a chunk holds >= 2 shelves: 999 = 15 * 64 + 39, so itemgetter returns tuples)
            rows = shelf_sets(*keys_of(lib), range(v, min(v + _CHUNK, 1000)))
            got = pchunks[(lib, v)] = [itemgetter(*row) for row in rows]
        return got

    # the spill scroll (999.1 at the sentron's home) can be touched by any statement
    spill = [cset(private_coord(s, RESERVED_LIBRARY + 9, 1)) for s in range(ns)]
    fixed: list[dict[int, int]] = []  # per group: {set: cost} of its coordinates that are not re-picked
    own: list[list[int]] = []  # per group: per sentron, the set of its own layer of a by-sentron stack
    members: list[list[str]] = []
    unit_groups: dict[str, list[int]] = {k: [] for k in units}
    for g in b.groups:
        us = [k for k in g if k in unit_set]
        if not us:
            continue
        cost: dict[int, int] = {}
        mine: list[tuple[int, int]] = []
        for k in g:
            if k in unit_set:
                continue
            for st, w in contribution(k).items():
                cost[st] = cost.get(st, 0) + w
            sc = scrolls[k]
            if isinstance(sc.layer, VReg) and sc.alias in scrolls and scrolls[sc.alias].by_sentron:
                mine += [(s, cset(sc.coord + s)) for s in range(ns)]
        gi = len(fixed)
        fixed.append(cost)
        own.append(mine)
        members.append(us)
        for k in us:
            unit_groups[k].append(gi)
    taken = {sc.coord + i for sc in scrolls.values() if sc.coord is not None for i in range(sc.layers)}
    shelves = {sc.private for sc in scrolls.values() if sc.private is not None}
    chosen: dict[str, list[int]] = {}  # unit -> PPT set per sentron
    left: dict[str, int] = {}
    order = sorted(units, key=lambda k: -len(unit_groups[k]))
    for k in order:
        sc = scrolls[k]
        base = [0] * PPT_SETS
        for gi in unit_groups[k]:
            for i, c in fixed[gi].items():
                base[i] += c
        per_s = [list(base) for _ in range(ns)]
        for s in range(ns):
            per_s[s][spill[s]] += lmax
        for gi in unit_groups[k]:
            for s, st in own[gi]:
                per_s[s][st] += lmax
        for gi in unit_groups[k]:
            for y in members[gi]:
                if y != k and y in chosen:
                    for s in range(ns):
                        per_s[s][chosen[y][s]] += lmax
        # the first candidate, in the order (old, 1, ..., 999), of least cost among the free ones
        # (costs are >= 0: a cost of 0 ends the search)
        if sc.private is not None:
            lib, old = sc.private
            best, best_cost = old, sum(map(getitem, per_s, private_sets(lib, old)))
            v = 1
            while best_cost and v < 1000:
                # a chunk of candidates at a time: their costs summed over the sentrons by map(), and
                # the chunk skipped when none of them is cheaper
                costs = [get(row) for get, row in zip(private_chunk(lib, v), per_s, strict=True)]
                acc = list(map(sum, zip(*costs, strict=True)))
                if min(acc) < best_cost:
                    for j, cost in enumerate(acc):
                        if cost < best_cost and (v + j == old or (lib, v + j) not in shelves):
                            best, best_cost = v + j, cost
                            if cost == 0:
                                break
                v += _CHUNK
            chosen[k] = private_sets(lib, best)
        else:
            old = coords.get_part_packed(sc.coord, 1)
            # the coordinate with part 1 = v is zero + (v - 1) * step (the field holds v - 1)
            zero = coords.set_part_packed(sc.coord, 1, 1)
            step = coords.set_part_packed(sc.coord, 1, 2) - zero
            # every sentron addresses the same coordinate: a set's cost is its column sum
            colsum = per_s[0] if ns == 1 else [sum(col) for col in zip(*per_s, strict=True)]
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
            chosen[k] = [cset(zero + (best - 1) * step)] * ns
        left[k] = best_cost or 0
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
