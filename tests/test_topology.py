"""Graph invariants, routing and spec parsing of vtpu_cli.fleet.topology."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.core.errors import VtpuError
from vtpu_cli.fleet.topology import Topology, default_topology, parse_shape, parse_topology, twist_parameters


def bfs_distances(topo: Topology, src: int) -> list[int]:
    """Independent BFS over links() (does not use the class's own distance table)."""
    adj: dict[int, list[int]] = {u: [] for u in range(topo.n)}
    for u, v in topo.links():
        adj[u].append(v)
    dist = [-1] * topo.n
    dist[src] = 0
    q = deque([src])
    while q:
        u = q.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                q.append(v)
    return dist


SMALL = [
    "ring:1",
    "ring:2",
    "ring:7",
    "ring:8",
    "torus:4x4",
    "torus:2x4",
    "torus:1x5",
    "torus:3x4x5",
    "torus:2x3x4",
    "twisted:4x4x8",
    "twisted:2x4x4",
    "twisted:3x6",
    "twisted:8x4x4",
]


@pytest.mark.parametrize(
    "spec", ["torus:3x3x3", "torus:4x4x4", "torus:3x4x5", "twisted:4x4x8", "twisted:4x8x8"]
)
def test_degree_six_and_symmetric_links(spec):
    topo = parse_topology(spec)
    links = set(topo.links())
    assert all(topo.degree(u) == 6 for u in range(topo.n))
    assert all((v, u) in links for u, v in links)
    assert len(links) == 6 * topo.n
    assert all(u != v for u, v in links)


def test_small_dimensions_dedupe():
    assert Topology("torus", (2, 4)).degree(0) == 3  # size-2 dimension: one shared link
    assert Topology("torus", (1, 5)).degree(0) == 2  # size-1 dimension: no link
    assert Topology("ring", (2,)).links() == [(0, 1), (1, 0)]
    assert Topology("ring", (1,)).links() == []
    assert Topology("torus", (2, 2, 2)).degree(0) == 3


def test_row_major_numbering_and_neighbor_order():
    t = Topology("torus", (4, 5, 6))
    assert t.node((0, 0, 1)) == 1
    assert t.node((0, 1, 0)) == 6
    assert t.node((1, 0, 0)) == 30
    assert t.coords(t.node((3, 2, 1))) == (3, 2, 1)
    assert t.neighbors(0) == [30, 90, 6, 24, 1, 5]  # +x, -x, +y, -y, +z, -z
    with pytest.raises(VtpuError):
        t.node((4, 0, 0))
    with pytest.raises(VtpuError):
        t.coords(120)


def test_twist_rule():
    t = Topology("twisted", (4, 4, 8))
    assert t.twist == (4, (0, 1), (2,))
    assert t.step(t.node((3, 0, 0)), 0, +1) == t.node((0, 0, 4))
    assert t.step(t.node((0, 0, 1)), 1, -1) == t.node((0, 3, 5))
    assert t.step(t.node((1, 2, 7)), 2, +1) == t.node((1, 2, 0))  # long dimension: plain wrap
    t2 = Topology("twisted", (4, 8, 8))
    assert t2.step(t2.node((3, 1, 2)), 0, +1) == t2.node((0, 5, 6))  # diagonal (+k, +k)
    assert twist_parameters((4, 4, 4)) is None
    assert twist_parameters((4, 4, 12)) is None
    assert twist_parameters((8, 4, 8)) == (4, (1,), (0, 2))


@pytest.mark.parametrize("shape", [(4, 4, 8), (4, 8, 8), (8, 8, 16)])
def test_twisted_smaller_diameter_and_hops(shape):
    reg, tw = Topology("torus", shape), Topology("twisted", shape)
    assert tw.diameter() < reg.diameter()
    assert tw.average_hops() < reg.average_hops()
    assert tw.bisection_links() == 2 * reg.bisection_links()


def test_known_figures():
    t = Topology("torus", (4, 4, 8))
    assert (t.diameter(), t.bisection_links()) == (8, 32)
    assert t.average_hops() == pytest.approx(512 / 127)
    tw = Topology("twisted", (4, 4, 8))
    assert (tw.diameter(), tw.bisection_links()) == (6, 64)
    assert Topology("twisted", (4, 8, 8)).diameter() == 6
    pod = Topology("torus", (16, 16, 16))
    assert (pod.diameter(), pod.bisection_links()) == (24, 512)
    assert pod.bisection_gbps() == 25600.0
    assert Topology("torus", (4, 4, 4)).bisection_links() == 32
    assert Topology("ring", (8,)).bisection_links() == 2


@pytest.mark.parametrize("n", [3, 4, 7, 8, 11, 16])
def test_ring_average_hops_closed_form(n):
    t = Topology("ring", (n,))
    total = (n * n - 1) / 4 if n % 2 else n * n / 4
    assert t.average_hops() == pytest.approx(total / (n - 1))
    assert t.diameter() == n // 2


@pytest.mark.parametrize("spec", SMALL)
def test_routes_are_minimal_for_all_pairs(spec):
    topo = parse_topology(spec)
    links = set(topo.links())
    for a in range(topo.n):
        ref = bfs_distances(topo, a)
        for b in range(topo.n):
            path = topo.route(a, b)
            assert path[0] == a and path[-1] == b
            assert len(path) - 1 == topo.distance(a, b) == ref[b]
            assert all((u, v) in links for u, v in zip(path, path[1:], strict=False))


def test_dimension_order_tie_rule():
    t = Topology("torus", (4, 4))
    # offset (2, 2): resolve x first, the + way on the tie
    assert t.route(0, t.node((2, 2))) == [0, t.node((1, 0)), t.node((2, 0)), t.node((2, 1)), t.node((2, 2))]
    r = Topology("ring", (8,))
    assert r.next_hop(0, 4) == 1 and r.next_hop(0, 5) == 7 and r.next_hop(3, 3) == 3


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    data=st.data(),
)
def test_property_torus_routes(shape, data):
    topo = Topology("torus", shape)
    a = data.draw(st.integers(0, topo.n - 1))
    b = data.draw(st.integers(0, topo.n - 1))
    d = topo.distance(a, b)
    assert d == topo.distance(b, a) == bfs_distances(topo, a)[b]
    # closed form for a regular torus: sum of per-dimension ring distances
    ca, cb = topo.coords(a), topo.coords(b)
    assert d == sum(min((x - y) % s, (y - x) % s) for x, y, s in zip(ca, cb, shape, strict=True))
    assert len(topo.route(a, b)) == d + 1
    for v in topo.neighbors(a):
        assert abs(topo.distance(v, b) - d) <= 1


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 4), long_count=st.integers(1, 2), perm=st.permutations([0, 1, 2]), data=st.data())
def test_property_twisted_routes(k, long_count, perm, data):
    sizes = [k] * (3 - long_count) + [2 * k] * long_count
    shape = tuple(sizes[i] for i in perm)
    topo = Topology("twisted", shape)
    a = data.draw(st.integers(0, topo.n - 1))
    ref = bfs_distances(topo, a)
    for b in range(topo.n):
        assert len(topo.route(a, b)) - 1 == ref[b]
    assert max(ref) == topo.diameter()  # vertex-transitive: every node sees the same diameter


def test_parse_topology_specs():
    assert parse_topology("ring", n=5) == Topology("ring", (5,))
    assert parse_topology("ring:8").shape == (8,)
    assert parse_topology("torus:4x4x4").n == 64
    assert parse_topology("TWISTED:4x4x8").kind == "twisted"
    assert parse_topology("4x4").kind == "torus"
    assert parse_topology("torus:8", n=8).dims == 1
    assert default_topology(6) == Topology("ring", (6,))
    assert parse_shape("4 x 4x8") == (4, 4, 8)


@pytest.mark.parametrize(
    "spec,n",
    [
        ("", None),
        ("ring", None),
        ("ring:0", None),
        ("ring:4x4", None),
        ("torus", 8),
        ("torus:4y4", None),
        ("twisted:4x4x4", None),
        ("twisted:8", None),
        ("mesh:4x4", None),
        ("torus:4x4", 15),
        ("ring:-3", None),
    ],
)
def test_parse_topology_errors(spec, n):
    with pytest.raises(VtpuError):
        parse_topology(spec, n)


def test_bad_nodes_raise():
    t = default_topology(4)
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(VtpuError):
            t.next_hop(bad, 0)
    with pytest.raises(VtpuError):
        default_topology(0)
