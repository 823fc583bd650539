"""Interconnect topologies shared by the runtime's hop-by-hop routing and the TPU v4 pod simulator.

One class, :class:`Topology`, covers three kinds:

``ring``
    A 1-D torus of ``n`` nodes (``shape == (n,)``).
``torus``
    A torus of any number of dimensions and any sizes (``torus:4x4``, ``torus:4x4x8``, ...).
``twisted``
    A twisted torus (TPU v4, ISCA 2023, section 2; after Camara et al., IEEE TPDS 2010): every size is
    either ``k`` (a *short* dimension) or ``2k`` (a *long* one) and both occur, e.g. ``4x4x8`` or
    ``4x8x8``. The wraparound link of every short dimension lands offset by ``+k`` along every long
    dimension (see "Twist rule" below).

Node numbering
--------------
Nodes are the integers ``0..n-1`` in row-major (C) order over ``shape``: the **last** coordinate varies
fastest, ``node = (x * Y + y) * Z + z`` for a 3-D shape ``X x Y x Z`` (the same order as
``numpy.ravel_multi_index``).

Links
-----
Every node links to ``node +/- e_d`` (the next/previous node along each dimension ``d``, wrapping
around). Links are deduplicated: in a dimension of size 1 the step is the node itself, so there is no link;
in a regular dimension of size 2 ``+e_d`` and ``-e_d`` reach the same node, so the pair shares one link
(per direction) and the node's degree drops by one. With every size >= 3 every node of a ``D``-dimensional
torus has degree ``2*D`` (6 in 3-D). :meth:`Topology.links` returns directed edges, both directions of
every link.

Twist rule
----------
Coordinates of a twisted torus are read modulo a lattice rather than dimension by dimension: stepping
``+1`` from the last position ``k-1`` of a short dimension lands at position ``0`` of that dimension
**and** ``k`` further along every long dimension (mod ``2k``); stepping ``-1`` from position ``0`` does the
reverse. ``k x k x 2k`` therefore twists both short wraparounds by ``k`` along the long dimension and
``k x 2k x 2k`` twists the short wraparound by ``(k, k)`` diagonally across the two long ones. The paper
offers twisted tori for ``k x k x 2k`` and ``k x 2k x 2k`` shapes, the OCSes rewiring the wraparound
links to land offset along the longer dimension(s); offsetting by half the long dimension is Camara et
al.'s rule, the one that makes the mixed-radix torus edge-symmetric again (and, of the placements
compared in ``docs/topo.md``, the one with the smallest diameter and average distance). The
figures in ``docs/tpu-v4-mapping.md`` (diameter 8 -> 6 and bisection 32 -> 64 links for ``4x4x8``) follow
from exactly this rule.

Every kind is a Cayley graph of an abelian group (``Z^D`` modulo a lattice), so every node sees the same
graph: distances are computed once from node 0 by BFS and ``distance(a, b) == distance(0, b - a)``.

Routing
-------
:meth:`Topology.next_hop` is deterministic minimal routing: try the steps in the fixed order
``+e_0, -e_0, +e_1, -e_1, ...`` and take the first one that brings the message one hop closer. On a
regular torus this is dimension-order routing (resolve dimension 0 first, then 1, ...), each dimension the
short way round, ties (an offset of exactly half a ring) going the ``+`` way. On a twisted torus it is the
same rule applied to the twisted distances. Every hop lowers the remaining distance by exactly one, so a
route is always ``distance(src, dst)`` hops long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from vtpu_cli.core.errors import VtpuError

LINK_GBPS = 50.0
"""Bandwidth of one link in one direction, GB/s (TPU v4 ICI, as modelled here)."""

KINDS = ("ring", "torus", "twisted")
MAX_NODES = 1 << 20

_SHAPE_RE = re.compile(r"^\s*(\d+)(\s*[xX*]\s*\d+)*\s*$")


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"4x4x8"`` (or ``"8"``) into ``(4, 4, 8)``; raise :class:`VtpuError` on anything else."""
    if not isinstance(text, str) or not _SHAPE_RE.match(text):
        raise VtpuError(
            f"bad shape {text!r}",
            hint="write the sizes separated by 'x', e.g. 8, 4x4 or 4x4x8",
        )
    dims = tuple(int(p) for p in re.split(r"[xX*]", text.replace(" ", "")))
    if any(d < 1 for d in dims):
        raise VtpuError(f"bad shape {text!r}: every size must be >= 1")
    return dims


def twist_parameters(shape: Sequence[int]) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
    """Return ``(k, short_dims, long_dims)`` when ``shape`` can be twisted, else ``None``.

    A shape can be twisted when it has 2 or 3 dimensions, every size is ``k`` or ``2k`` for one
    ``k >= 1``, and both sizes occur (``k x 2k``, ``k x k x 2k``, ``k x 2k x 2k`` in any order).
    """
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        return None
    k = min(shape)
    if k < 1 or max(shape) != 2 * k or any(s not in (k, 2 * k) for s in shape):
        return None
    short = tuple(i for i, s in enumerate(shape) if s == k)
    long_ = tuple(i for i, s in enumerate(shape) if s == 2 * k)
    return k, short, long_


class Topology:
    """A ring, torus or twisted torus over nodes ``0..n-1`` (see the module docstring for every rule)."""

    def __init__(self, kind: str, shape: Sequence[int]):
        if kind not in KINDS:
            raise VtpuError(f"unknown topology kind {kind!r}", hint="use ring, torus or twisted")
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 1 for s in shape):
            raise VtpuError(f"bad {kind} shape {shape}: sizes must be >= 1")
        if kind == "ring" and len(shape) != 1:
            raise VtpuError(f"a ring has one dimension, got shape {shape}")
        n = 1
        for s in shape:
            n *= s
        if n > MAX_NODES:
            raise VtpuError(f"topology too large: {n} nodes (at most {MAX_NODES})")
        self._twist = None
        if kind == "twisted":
            tw = twist_parameters(shape)
            if tw is None:
                raise VtpuError(
                    f"shape {'x'.join(map(str, shape))} cannot be twisted",
                    hint="a twisted torus is k x k x 2k or k x 2k x 2k (or 2-D k x 2k), e.g. 4x4x8 or 4x8x8",
                )
            self._twist = tw
        self.kind = kind
        self.shape = shape
        self.n = n
        self._strides = tuple(int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(len(shape)))
        self._build()

    # ------------------------------------------------------------------ construction
    def _reduce(self, v: np.ndarray) -> np.ndarray:
        """Reduce integer coordinate rows ``v`` (shape ``(m, D)``) to the canonical box, in place."""
        if self._twist is not None:
            k, short, long_ = self._twist
            for s in short:
                q = np.floor_divide(v[:, s], k)
                v[:, s] -= q * k
                for lg in long_:
                    v[:, lg] += q * k
        v %= np.asarray(self.shape, dtype=np.int64)
        return v

    def _ravel(self, v: np.ndarray) -> np.ndarray:
        return v @ np.asarray(self._strides, dtype=np.int64)

    def _build(self) -> None:
        d = len(self.shape)
        self._all_coords = np.stack(
            np.unravel_index(np.arange(self.n, dtype=np.int64), self.shape), axis=1
        ).astype(np.int64)
        gens: list[tuple[int, int]] = []  # (dim, sign)
        seen: set[int] = set()
        for dim in range(d):
            for sign in (1, -1):
                vec = np.zeros((1, d), dtype=np.int64)
                vec[0, dim] = sign
                g = int(self._ravel(self._reduce(vec))[0])
                if g == 0 or g in seen:
                    continue
                seen.add(g)
                gens.append((dim, sign))
        self._gens = gens
        table = np.empty((self.n, len(gens)), dtype=np.int64)
        for j, (dim, sign) in enumerate(gens):
            v = self._all_coords.copy()
            v[:, dim] += sign
            table[:, j] = self._ravel(self._reduce(v))
        self._nbr = table
        # index of the inverse step of each generator (the inverse of a generator is a generator)
        gen_nodes = [int(table[0, j]) for j in range(len(gens))]
        inv = []
        for j in range(len(gens)):
            back = [i for i in range(len(gens)) if int(table[gen_nodes[j], i]) == 0]
            inv.append(back[0])
        self._inv = inv
        # BFS distances from node 0 (vertex-transitive: enough for every pair)
        dist = np.full(self.n, -1, dtype=np.int64)
        dist[0] = 0
        frontier = np.array([0], dtype=np.int64)
        level = 0
        while frontier.size:
            level += 1
            cand = table[frontier].ravel() if table.shape[1] else np.empty(0, dtype=np.int64)
            cand = np.unique(cand[dist[cand] < 0])
            dist[cand] = level
            frontier = cand
        self._dist0 = dist

    # ------------------------------------------------------------------ basic queries
    @property
    def dims(self) -> int:
        return len(self.shape)

    @property
    def spec(self) -> str:
        """The spec string that :func:`parse_topology` turns back into this topology."""
        return f"{self.kind}:{'x'.join(map(str, self.shape))}"

    @property
    def twist(self) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
        """``(k, short_dims, long_dims)`` for a twisted torus, else ``None``."""
        return self._twist

    @property
    def steps(self) -> list[tuple[int, int]]:
        """The distinct link steps as ``(dim, sign)``, in routing-preference order."""
        return list(self._gens)

    def __repr__(self) -> str:
        return f"Topology({self.kind!r}, {self.shape})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and (self.kind, self.shape) == (other.kind, other.shape)

    def __hash__(self) -> int:
        return hash((self.kind, self.shape))

    def _check(self, node: int) -> int:
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)) or not 0 <= node < self.n:
            raise VtpuError(f"node {node!r} out of range for {self.spec} (0..{self.n - 1})")
        return int(node)

    def coords(self, node: int) -> tuple[int, ...]:
        """Coordinates of ``node`` (row-major, last dimension fastest)."""
        node = self._check(node)
        return tuple(int(c) for c in self._all_coords[node])

    def node(self, coords: Iterable[int]) -> int:
        """Node number of in-range ``coords``; :class:`VtpuError` if a coordinate is out of range."""
        c = tuple(int(x) for x in coords)
        if len(c) != self.dims or any(not 0 <= x < s for x, s in zip(c, self.shape, strict=True)):
            raise VtpuError(f"coordinates {c} out of range for {self.spec}")
        return sum(x * st for x, st in zip(c, self._strides, strict=True))

    def wrap(self, coords: Iterable[int]) -> int:
        """Node reached from the origin by the (possibly out-of-range) integer offset ``coords``."""
        v = np.asarray([list(coords)], dtype=np.int64)
        if v.shape[1] != self.dims:
            raise VtpuError(f"expected {self.dims} coordinates, got {v.shape[1]}")
        return int(self._ravel(self._reduce(v))[0])

    def step(self, node: int, dim: int, sign: int = 1) -> int:
        """The node one step ``sign`` (+1/-1) along ``dim`` from ``node``; may be ``node`` itself (size 1)."""
        node = self._check(node)
        if not 0 <= dim < self.dims or sign not in (1, -1):
            raise VtpuError(f"bad step dim={dim} sign={sign} for {self.spec}")
        v = self._all_coords[node : node + 1].copy()
        v[0, dim] += sign
        return int(self._ravel(self._reduce(v))[0])

    def neighbors(self, node: int) -> list[int]:
        """Linked nodes in the fixed order ``+e_0, -e_0, +e_1, ...`` (deduplicated, no self links)."""
        node = self._check(node)
        out: list[int] = []
        for v in self._nbr[node].tolist():
            if v != node and v not in out:
                out.append(v)
        return out

    def degree(self, node: int = 0) -> int:
        return len(self.neighbors(node))

    def links(self) -> list[tuple[int, int]]:
        """Directed links ``(u, v)``: both directions of every physical link, sorted."""
        edges = {(u, v) for u in range(self.n) for v in self.neighbors(u)}
        return sorted(edges)

    def neighbor_table(self) -> np.ndarray:
        """``(n, len(steps))`` array: ``table[u, j]`` is the node one step ``steps[j]`` from ``u``."""
        return self._nbr.copy()

    # ------------------------------------------------------------------ distances and routing
    def _delta(self, a: int, b: int) -> int:
        """The group element ``b - a`` as a node number."""
        v = self._all_coords[b : b + 1] - self._all_coords[a : a + 1]
        return int(self._ravel(self._reduce(v))[0])

    def distances_from(self, node: int = 0) -> np.ndarray:
        """Hop counts from ``node`` to every node (array of length ``n``)."""
        node = self._check(node)
        if node == 0:
            return self._dist0.copy()
        v = self._all_coords - self._all_coords[node]
        return self._dist0[self._ravel(self._reduce(v))]

    def distance(self, a: int, b: int) -> int:
        """Minimal hop count from ``a`` to ``b``."""
        a, b = self._check(a), self._check(b)
        return int(self._dist0[self._delta(a, b)])

    def next_hop(self, src: int, dst: int) -> int:
        """Deterministic minimal next hop from ``src`` towards ``dst`` (``src`` itself when they are equal)."""
        src, dst = self._check(src), self._check(dst)
        if src == dst:
            return src
        delta = self._delta(src, dst)
        d = self._dist0[delta]
        for j in range(len(self._gens)):
            # remaining offset after the step is delta - g, i.e. one inverse step from delta
            if self._dist0[self._nbr[delta, self._inv[j]]] == d - 1:
                return int(self._nbr[src, j])
        raise AssertionError("no minimal next hop; topology tables are inconsistent")  # pragma: no cover

    def route(self, src: int, dst: int) -> list[int]:
        """Nodes visited from ``src`` to ``dst`` inclusive, following :meth:`next_hop`."""
        path = [self._check(src)]
        dst = self._check(dst)
        while path[-1] != dst:
            path.append(self.next_hop(path[-1], dst))
        return path

    def diameter(self) -> int:
        return int(self._dist0.max())

    def average_hops(self) -> float:
        """Mean hop count over ordered pairs of distinct nodes (0.0 for a single node)."""
        return float(self._dist0.sum()) / (self.n - 1) if self.n > 1 else 0.0

    # ------------------------------------------------------------------ bisection
    def bisection_cuts(self) -> list[dict]:
        """Links crossing each dimension-aligned cut (coordinate ``d < size_d // 2`` versus the rest)."""
        cuts = []
        table = self._nbr
        for dim, size in enumerate(self.shape):
            if size < 2:
                continue
            side = self._all_coords[:, dim] < size // 2
            # count each undirected link once: directed edges from side A to side B (dedup per node)
            crossing = 0
            for u in np.flatnonzero(side).tolist():
                row = {int(v) for v in table[u].tolist()}
                crossing += sum(1 for v in row if not side[v])
            cuts.append({"dim": dim, "links": crossing, "balanced": size % 2 == 0})
        return cuts

    def bisection_links(self) -> int:
        """Links cut by the narrowest dimension-aligned bisection (balanced cuts preferred).

        For regular tori with an even size this is the exact bisection width ``2 n / max even size``.
        For twisted tori it is an upper bound on the width; the all-to-all LP in :mod:`vtpu_cli.pod.planner`
        gives the matching lower bound for the shapes documented in ``docs/topo.md``.
        """
        cuts = self.bisection_cuts()
        if not cuts:
            return 0
        balanced = [c["links"] for c in cuts if c["balanced"]]
        return min(balanced) if balanced else min(c["links"] for c in cuts)

    def bisection_gbps(self, link_gbps: float = LINK_GBPS) -> float:
        """Bisection bandwidth in one direction across the cut, GB/s (double it for both directions)."""
        return self.bisection_links() * link_gbps

    def summary(self, link_gbps: float = LINK_GBPS) -> dict:
        """The figures ``vtpu topo show`` prints."""
        links = self.bisection_links()
        return {
            "topology": self.spec,
            "kind": self.kind,
            "shape": list(self.shape),
            "nodes": self.n,
            "degree": self.degree(0),
            "links": len(self.links()) // 2,
            "diameter": self.diameter(),
            "average_hops": self.average_hops(),
            "bisection_links": links,
            "bisection_gbps_per_direction": links * link_gbps,
            "bisection_gbps_bidirectional": 2 * links * link_gbps,
            "link_gbps": link_gbps,
        }


def parse_topology(spec: str, n: int | None = None) -> Topology:
    """Build a topology from ``ring``, ``ring:8``, ``torus:4x4``, ``twisted:4x4x8`` or a bare ``4x4x8``.

    ``n`` is the number of nodes the caller needs (e.g. sentrons): it fills in ``ring`` without a size
    and must match the shape's node count when both are given.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise VtpuError("empty topology spec", hint="e.g. ring, ring:8, torus:4x4x4, twisted:4x4x8")
    text = spec.strip().lower()
    kind, _, dims = text.partition(":")
    if kind not in KINDS:
        if _SHAPE_RE.match(text):
            kind, dims = "torus", text
        else:
            raise VtpuError(
                f"unknown topology {spec!r}", hint="use ring, ring:N, torus:AxB[xC] or twisted:AxBxC"
            )
    if not dims:
        if kind == "ring" and n is not None:
            dims = str(n)
        else:
            raise VtpuError(
                f"topology {spec!r} needs a size",
                hint=f"e.g. {kind}:8" if kind == "ring" else f"e.g. {kind}:4x4x8",
            )
    shape = parse_shape(dims)
    if kind == "ring" and len(shape) != 1:
        raise VtpuError(f"a ring has one size, got {dims!r}", hint="e.g. ring:8, or torus:4x4")
    if kind == "twisted" and len(shape) != 3 and twist_parameters(shape) is None:
        raise VtpuError(f"cannot twist {dims!r}", hint="a twisted torus is k x k x 2k or k x 2k x 2k")
    topo = Topology(kind, shape)
    if n is not None and topo.n != n:
        raise VtpuError(
            f"topology {topo.spec} has {topo.n} nodes but {n} are needed",
            hint=f"use a shape whose sizes multiply to {n}, or plain 'ring'",
        )
    return topo


def default_topology(n: int) -> Topology:
    """The topology used when none is given: a ring of ``n`` nodes."""
    if n < 1:
        raise VtpuError(f"need at least one node, got {n}")
    return Topology("ring", (n,))
