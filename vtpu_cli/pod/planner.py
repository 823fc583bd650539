"""A model of the TPU v4 pod (Jouppi et al., ISCA 2023, arXiv:2304.01433) in vtpu/phext terms.

Physical model
--------------
* 4096 chips in 64 *blocks* of 4x4x4 chips. A block is one rack: 16 hosts x 4 chips.
* Inside a block the chips form an electrical 4x4x4 mesh (no wraparound inside the block).
* Each block has 6 faces of 4x4 = 16 links. Every face link goes to an optical circuit switch (OCS): one
  OCS per (dimension, link index) pair, 3 x 16 = 48 OCSes. OCS ``(d, i)`` serves link ``i`` of the ``+d``
  face ("north" port ``b``) and of the ``-d`` face ("south" port ``b``) of every block ``b``. A circuit
  north ``a`` -> south ``b`` joins block ``a``'s ``+d`` face to block ``b``'s ``-d`` face, link by link.
* A slice of ``4i x 4j x 4k`` chips is ``i x j x k`` blocks on *any* healthy blocks (the OCSes rewire), a
  torus (or, for ``k x k x 2k`` / ``k x 2k x 2k`` shapes, optionally a twisted torus). Slices smaller than
  a block are meshes inside one block; this model offers them as 4, 8, 16 and 32 chips (1, 2, 4, 8 hosts).

Chip identity and the phext coordinate
--------------------------------------
``chip = 64 * block + 4 * host_in_block + chip_in_host`` (0..4095), so a host's chips are consecutive.
Host ``h`` of a block is the 2x2x1 tile ``x in {2hx, 2hx+1}``, ``y in {2hy, 2hy+1}``, ``z = h // 4`` with
``hx = h % 2``, ``hy = (h // 2) % 2``; chip ``c`` of the host sits at ``x = 2hx + c % 2``,
``y = 2hy + c // 2``. (The paper gives 4 chips per host; the 2x2 tile is this model's choice.)
Blocks sit in a default 4x4x4 *block grid*, ``block = 16 bx + 4 by + bz`` (row-major, like
:mod:`vtpu_cli.fleet.topology`), so a chip's position in the full-pod 16x16x16 torus is ``4 * (bx, by, bz) +
(x, y, z)``.

The phext coordinate of a chip is ``pod.rack.host / x.y.z / gx.gy.gz`` (every part 1-based):

* library.shelf.series = pod (1), rack = block (1..64), host in the rack (1..16): the physical,
  field-replaceable hierarchy, coarse to fine, as phext reads left to right;
* collection.volume.book = position in the block's electrical mesh (1..4 each): fixed wiring;
* chapter.section.scroll = position in the pod's default (static, OCS-identity) 16x16x16 torus (1..16).

The host part and the last triple are implied by the others; :func:`coord_to_chip` checks that they agree,
so the map between the 4096 chips and the 4096 valid coordinates is a bijection. A chip's position *in a
slice* is not part of its identity: it is ``4 * slot + (x, y, z)`` where ``slot`` is the slice position of
the chip's block (:meth:`SliceAllocation.chip_position`).

Everything numeric here is a model with stated assumptions; ``docs/tpu-v4-mapping.md`` compares it with
the paper.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.fleet.topology import LINK_GBPS, Topology, parse_shape, twist_parameters

CHIPS = 4096
BLOCKS = 64
BLOCK_EDGE = 4
CHIPS_PER_BLOCK = 64
HOSTS_PER_BLOCK = 16
CHIPS_PER_HOST = 4
HOSTS = BLOCKS * HOSTS_PER_BLOCK
FACE_LINKS = 16
OCS_COUNT = 3 * FACE_LINKS
SUB_BLOCK_SLICES = (4, 8, 16, 32)
AVAILABILITY_SWEEP = tuple(round(0.990 + 0.001 * i, 3) for i in range(10))
MAX_LP_NODES = 65536
DIM_NAMES = "xyz"


# ---------------------------------------------------------------------------------------------- phext


def _parse_phext(text: str) -> tuple[int, ...]:
    """Parse with the project's one phext parser (:mod:`vtpu_cli.core.coords`); CoordError is a VtpuError."""
    from vtpu_cli.core.coords import Coord

    return Coord.parse(text).parts


def _fmt_phext(parts: tuple[int, ...]) -> str:
    from vtpu_cli.core.coords import Coord

    return str(Coord(tuple(parts)))


@dataclass(frozen=True)
class ChipLocation:
    """Everything the pod knows about where one chip is."""

    chip: int
    block: int  # == rack
    host: int  # global host number 0..1023
    host_in_block: int
    chip_in_host: int
    block_pos: tuple[int, int, int]  # position in the block's 4x4x4 mesh
    block_grid: tuple[int, int, int]  # the block's place in the default 4x4x4 block grid
    pod_pos: tuple[int, int, int]  # position in the default 16x16x16 pod torus
    coordinate: str

    def as_dict(self) -> dict:
        return {
            "chip": self.chip,
            "coordinate": self.coordinate,
            "block": self.block,
            "rack": self.block,
            "host": self.host,
            "host_in_block": self.host_in_block,
            "chip_in_host": self.chip_in_host,
            "block_pos": list(self.block_pos),
            "block_grid": list(self.block_grid),
            "pod_pos": list(self.pod_pos),
        }


def _check_chip(chip: int) -> int:
    if isinstance(chip, bool) or not isinstance(chip, (int, np.integer)) or not 0 <= chip < CHIPS:
        raise VtpuError(f"chip {chip!r} out of range (0..{CHIPS - 1})")
    return int(chip)


def block_grid(block: int) -> tuple[int, int, int]:
    return (block // 16, (block // 4) % 4, block % 4)


def host_chip_pos(host_in_block: int, chip_in_host: int) -> tuple[int, int, int]:
    hx, hy, z = host_in_block % 2, (host_in_block // 2) % 2, host_in_block // 4
    return (2 * hx + chip_in_host % 2, 2 * hy + chip_in_host // 2, z)


def pos_host_chip(pos: tuple[int, int, int]) -> tuple[int, int]:
    x, y, z = pos
    return (z * 4 + (y // 2) * 2 + x // 2, (y % 2) * 2 + x % 2)


def chip_location(chip: int) -> ChipLocation:
    chip = _check_chip(chip)
    block, rest = divmod(chip, CHIPS_PER_BLOCK)
    hib, cih = divmod(rest, CHIPS_PER_HOST)
    pos = host_chip_pos(hib, cih)
    grid = block_grid(block)
    pod = tuple(BLOCK_EDGE * g + p for g, p in zip(grid, pos, strict=True))
    coord = _fmt_phext((1, block + 1, hib + 1, *(p + 1 for p in pos), *(q + 1 for q in pod)))
    return ChipLocation(chip, block, block * HOSTS_PER_BLOCK + hib, hib, cih, pos, grid, pod, coord)


def chip_to_coord(chip: int) -> str:
    return chip_location(chip).coordinate


def coord_to_chip(coordinate: str) -> int:
    """Inverse of :func:`chip_to_coord`; :class:`VtpuError` when the parts do not name one chip."""
    p = _parse_phext(coordinate)
    pod, rack = p[0], p[1]  # p[2] (host) and p[6:9] are checked below
    pos = tuple(v - 1 for v in p[3:6])
    if pod != 1:
        raise VtpuError(f"coordinate {coordinate!r}: pod {pod} does not exist", hint="this model has pod 1")
    if not 1 <= rack <= BLOCKS:
        raise VtpuError(f"coordinate {coordinate!r}: rack {rack} out of range 1..{BLOCKS}")
    if not all(0 <= v < BLOCK_EDGE for v in pos):
        raise VtpuError(f"coordinate {coordinate!r}: block position parts must be 1..4")
    hib, cih = pos_host_chip(pos)  # type: ignore[arg-type]
    chip = (rack - 1) * CHIPS_PER_BLOCK + hib * CHIPS_PER_HOST + cih
    expected = chip_to_coord(chip)
    if expected != _fmt_phext(p):
        raise VtpuError(
            f"coordinate {coordinate!r} is inconsistent",
            hint=f"rack {rack}, block position {'.'.join(str(v + 1) for v in pos)} is chip {chip}: {expected}",
        )
    return chip


def host_chips(host: int) -> list[int]:
    if not 0 <= host < HOSTS:
        raise VtpuError(f"host {host} out of range (0..{HOSTS - 1})")
    return list(range(host * CHIPS_PER_HOST, (host + 1) * CHIPS_PER_HOST))


def block_chips(block: int) -> list[int]:
    if not 0 <= block < BLOCKS:
        raise VtpuError(f"block {block} out of range (0..{BLOCKS - 1})")
    return list(range(block * CHIPS_PER_BLOCK, (block + 1) * CHIPS_PER_BLOCK))


# ---------------------------------------------------------------------------------------------- slices


def parse_slice_shape(text: str) -> tuple[int, int, int]:
    """A block-multiple slice shape ``4i x 4j x 4k`` (at most 64 blocks)."""
    shape = parse_shape(text)
    if len(shape) != 3 or any(s % BLOCK_EDGE for s in shape):
        raise VtpuError(
            f"bad slice shape {text!r}",
            hint="a pod slice is 4i x 4j x 4k chips (whole 4x4x4 blocks), e.g. 4x4x8 or 12x16x16",
        )
    blocks = math.prod(s // BLOCK_EDGE for s in shape)
    if blocks > BLOCKS:
        raise VtpuError(f"slice {text} needs {blocks} blocks; the pod has {BLOCKS}")
    return shape  # type: ignore[return-value]


def check_slice_chips(chips: int) -> dict:
    """Validate a slice size in chips; return ``{"chips", "blocks", "hosts", "kind"}``."""
    if chips in SUB_BLOCK_SLICES:
        return {"chips": chips, "blocks": 0, "hosts": chips // CHIPS_PER_HOST, "kind": "sub-block mesh"}
    if isinstance(chips, int) and chips > 0 and chips % CHIPS_PER_BLOCK == 0 and chips <= CHIPS:
        b = chips // CHIPS_PER_BLOCK
        return {"chips": chips, "blocks": b, "hosts": b * HOSTS_PER_BLOCK, "kind": "block slice"}
    raise VtpuError(
        f"{chips} chips is not a valid slice size",
        hint="use 4, 8, 16 or 32 chips (inside one block) or a multiple of 64 up to 4096 (whole blocks)",
    )


def check_availability(a: float) -> float:
    if not isinstance(a, (int, float)) or math.isnan(a) or not 0.0 < a <= 1.0:
        hint = "give a fraction in (0, 1], e.g. 0.995"
        if isinstance(a, (int, float)) and 1.0 < a <= 100.0:
            hint += f" (did you mean {a / 100:g}?)"
        raise VtpuError(f"host availability {a!r} is outside (0, 1]", hint=hint)
    return float(a)


# ---------------------------------------------------------------------------------------------- all-to-all


def alltoall_lp(topo: Topology, link_gbps: float = LINK_GBPS) -> dict:
    """Best all-to-all throughput per chip over minimal paths, as a max-concurrent-flow LP (HiGHS).

    Model: every chip sends the same rate ``lam`` to every other chip; each link carries at most
    ``link_gbps`` per direction; traffic may be split over any set of minimal (shortest) paths.
    Maximise ``lam``; the per-chip all-to-all throughput is ``(n - 1) * lam``.

    Exact symmetric reduction: every topology here is a Cayley graph of an abelian group, so averaging
    any optimal multi-commodity flow over all translations gives an optimal translation-invariant one.
    It is fixed by the flows out of node 0, and every link of step ``g`` then carries the total flow the
    node-0 commodities put on step-``g`` links. Restricted to minimal paths, the node-0 commodities are
    exactly one single-source flow on the BFS DAG of node 0 (every DAG path is a shortest path and every
    shortest path lies in the DAG; a DAG flow decomposes into such paths). Variables: one per DAG edge;
    constraints: conservation at each node (demand ``lam``) and one capacity row per step direction.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    n = topo.n
    if n < 2:
        return {"topology": topo.spec, "nodes": n, "per_chip_gbps": 0.0, "per_pair_gbps": 0.0}
    if n > MAX_LP_NODES:
        raise VtpuError(
            f"{topo.spec} has {n} nodes; the all-to-all LP is limited to {MAX_LP_NODES}",
            hint="the whole TPU v4 pod (4096 chips) is well inside the limit",
            exit_code=Exit.ERROR,
        )
    table = topo.neighbor_table()
    dist = topo.distances_from(0)
    steps = table.shape[1]
    # DAG edges u -> table[u, j] that move one hop further from node 0; dedupe parallel steps
    src_list, dst_list, cls_list = [], [], []
    for j in range(steps):
        v = table[:, j]
        mask = dist[v] == dist + 1
        src_list.append(np.flatnonzero(mask))
        dst_list.append(v[mask])
        cls_list.append(np.full(int(mask.sum()), j))
    src = np.concatenate(src_list)
    dst = np.concatenate(dst_list)
    cls = np.concatenate(cls_list)
    # a regular size-2 dimension yields +e and -e as one step already (deduplicated in Topology)
    m = src.size
    lam = m  # index of the lambda variable
    nvar = m + 1
    # equality: for each node w != 0: inflow - outflow - lam = 0
    rows = np.concatenate([dst, src, np.arange(n)])
    cols = np.concatenate([np.arange(m), np.arange(m), np.full(n, lam)])
    vals = np.concatenate([np.ones(m), -np.ones(m), -np.ones(n)])
    a_eq = sparse.csr_matrix((vals, (rows, cols)), shape=(n, nvar))[1:]
    b_eq = np.zeros(n - 1)
    a_ub = sparse.csr_matrix((np.ones(m), (cls, np.arange(m))), shape=(steps, nvar))
    b_ub = np.full(steps, float(link_gbps))
    c = np.zeros(nvar)
    c[lam] = -1.0
    t0 = time.perf_counter()
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    solve_s = time.perf_counter() - t0
    if res.status != 0:
        raise VtpuError(f"all-to-all LP failed: {res.message}", exit_code=Exit.ERROR)
    rate = float(res.x[lam])
    loads = np.asarray(a_ub @ res.x).ravel()
    return {
        "topology": topo.spec,
        "nodes": n,
        "routing_model": "best split over minimal paths (max concurrent flow LP, HiGHS)",
        "per_pair_gbps": rate,
        "per_chip_gbps": rate * (n - 1),
        "per_chip_link_fraction": rate * (n - 1) / (topo.degree(0) * link_gbps),
        "step_load_gbps": {_step_name(topo, j): float(loads[j]) for j in range(steps)},
        "lp_variables": nvar,
        "lp_constraints": int(a_eq.shape[0] + a_ub.shape[0]),
        "lp_solve_s": solve_s,
        "link_gbps": link_gbps,
    }


def _step_name(topo: Topology, j: int) -> str:
    dim, sign = topo.steps[j]
    name = DIM_NAMES[dim] if topo.dims <= 3 else f"d{dim}"
    return ("+" if sign > 0 else "-") + name


def alltoall_dor(topo: Topology, link_gbps: float = LINK_GBPS) -> dict:
    """All-to-all throughput when every message follows :meth:`Topology.next_hop` (one fixed path)."""
    n = topo.n
    if n < 2:
        return {"per_chip_gbps": 0.0, "per_pair_gbps": 0.0}
    table = topo.neighbor_table()
    steps = table.shape[1]
    load = np.zeros(steps)
    # translation invariance: the load on every step-g link is the number of node-0 routes using a g step
    for dst in range(1, n):
        path = topo.route(0, dst)
        for u, v in zip(path, path[1:], strict=False):
            load[int(np.flatnonzero(table[u] == v)[0])] += 1
    rate = link_gbps / load.max()
    return {"per_pair_gbps": float(rate), "per_chip_gbps": float(rate * (n - 1))}


def alltoall_bounds(topo: Topology, link_gbps: float = LINK_GBPS) -> dict:
    """Closed-form upper bounds on per-chip all-to-all throughput.

    * hop bound: a chip injects ``lam * sum(dist)`` link-hops per second into ``degree`` links, so
      ``lam <= degree * C / sum(dist)``;
    * bisection bound: ``(n/2)^2 * lam`` crosses a balanced cut of ``L`` links each way, so
      ``lam <= L * C / (n/2)^2`` (for a balanced cut).
    """
    n = topo.n
    if n < 2:
        return {"hop_bound_gbps": 0.0, "bisection_bound_gbps": None}
    total = float(topo.distances_from(0).sum())
    hop = topo.degree(0) * link_gbps / total * (n - 1)
    cuts = [c for c in topo.bisection_cuts() if c["balanced"]]
    bis = None
    if cuts and n % 2 == 0:
        links = min(c["links"] for c in cuts)
        bis = links * link_gbps / (n / 2) ** 2 * (n - 1)
    return {"hop_bound_gbps": hop, "bisection_bound_gbps": bis}


def alltoall_report(shape: tuple[int, ...], twisted: bool = False, link_gbps: float = LINK_GBPS) -> dict:
    """Everything ``vtpu topo alltoall`` prints, including the twist gain when ``twisted``."""
    topo = Topology("twisted" if twisted else "torus", shape)
    lp = alltoall_lp(topo, link_gbps)
    out = dict(lp)
    out["dimension_order_per_chip_gbps"] = alltoall_dor(topo, link_gbps)["per_chip_gbps"]
    out.update(alltoall_bounds(topo, link_gbps))
    out["bisection_links"] = topo.bisection_links()
    if twisted:
        regular = alltoall_lp(Topology("torus", shape), link_gbps)
        out["regular_per_chip_gbps"] = regular["per_chip_gbps"]
        out["twist_gain"] = lp["per_chip_gbps"] / regular["per_chip_gbps"]
    return out


def ring_alltoall_closed_form(n: int, link_gbps: float = LINK_GBPS) -> float:
    """Per-node all-to-all throughput of an ``n``-node bidirectional ring over minimal paths.

    Odd ``n``: each direction's links carry ``lam * (1 + 2 + ... + (n-1)/2) = lam (n^2 - 1) / 8``, so the
    per-node rate ``(n - 1) lam`` is ``8 C / (n + 1)``. Even ``n``: the antipode's traffic splits evenly,
    the load is ``lam * n^2 / 8`` and the rate is ``8 C (n - 1) / n^2``.
    """
    if n < 2:
        return 0.0
    if n == 2:
        return link_gbps
    return 8 * link_gbps / (n + 1) if n % 2 else 8 * link_gbps * (n - 1) / n**2


def cube_alltoall_closed_form(k: int, link_gbps: float = LINK_GBPS) -> float:
    """Per-chip all-to-all throughput of a ``k x k x k`` torus, even ``k``: ``8 C (k^3 - 1) / k^4``.

    Bisection bound: a cut across one dimension crosses ``2 k^2`` links per direction and
    ``(k^3 / 2)^2`` pairs send across it, so ``lam <= 2 k^2 C / (k^6 / 4) = 8 C / k^4``. The hop bound
    gives the same value (average distance ``3k/4`` over all ``k^3`` nodes, degree 6), and balanced
    dimension-order routing meets it, so it is exact. ``k = 4``: ``63 C / 32 = 98.4375`` GB/s.
    """
    return 8 * link_gbps * (k**3 - 1) / k**4


# ---------------------------------------------------------------------------------------------- all-reduce


def allreduce_report(
    shape: tuple[int, ...], nbytes: int, twisted: bool = False, link_gbps: float = LINK_GBPS
) -> dict:
    """All-reduce time of ``nbytes`` per chip (bandwidth term only; no per-hop latency).

    * ``ring``: one unidirectional ring through all ``n`` chips (a Hamiltonian cycle exists in every
      torus here): ``2 (n-1)/n * S / C``.
    * ``bidirectional_ring``: the data split in halves that go round the same ring in opposite
      directions: ``(n-1)/n * S / C``.
    * ``dimension_rings`` (untwisted only): reduce-scatter then all-gather one dimension at a time, each on
      bidirectional rings of that dimension: ``sum_d 2 (n_d - 1)/n_d * S_d / (2C)`` with ``S_1 = S``,
      ``S_{d+1} = S_d / n_d``.
    * ``lower_bound``: every chip must send and receive ``2 (n-1)/n * S`` over its ``degree`` links.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise VtpuError(f"--bytes must be a positive integer, got {nbytes!r}")
    topo = Topology("twisted" if twisted else "torus", shape)
    n = topo.n
    bw = link_gbps * 1e9
    frac = (n - 1) / n if n > 1 else 0.0
    ring = 2 * frac * nbytes / bw
    bidir = frac * nbytes / bw
    dim_rings = None
    if not twisted:
        t, s = 0.0, float(nbytes)
        for size in shape:
            if size > 1:
                # a size-2 "ring" is one link used both ways: same formula with 2 directions
                t += 2 * (size - 1) / size * s / (2 * bw)
                s /= size
        dim_rings = t
    deg = topo.degree(0)
    lower = 2 * frac * nbytes / (deg * bw) if deg else 0.0
    return {
        "topology": topo.spec,
        "nodes": n,
        "bytes": nbytes,
        "link_gbps": link_gbps,
        "ring_s": ring,
        "bidirectional_ring_s": bidir,
        "dimension_rings_s": dim_rings,
        "lower_bound_s": lower,
    }


# ---------------------------------------------------------------------------------------------- goodput


def _binom_pmf(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def goodput_exact(chips: int, availability: float, ocs: bool = True) -> dict:
    """Expected goodput (fraction of the pod's 4096 chips running a slice) when every host is up
    independently with probability ``availability``.

    * Block slices of ``b`` blocks, OCS: a block is healthy iff its 16 hosts are up (``p = a^16``); the
      OCSes build a slice from any ``b`` healthy blocks, so ``slices = floor(H / b)`` with
      ``H ~ Binomial(64, p)``.
    * Block slices, static machine (no OCS): the 64 blocks are split once and for all into
      ``floor(64 / b)`` fixed groups of ``b`` consecutive block numbers (blocks ``g*b .. g*b+b-1``; in the
      row-major 4x4x4 block grid a group is a contiguous box when ``b`` is a power of two); group ``g`` can
      run its slice iff all its ``16 b`` hosts are up, so ``slices ~ Binomial(floor(64/b), a^(16 b))``.
    * Sub-block slices of ``h`` hosts (4..32 chips): fixed host groups in either machine, ``slices ~
      Binomial(1024 / h, a^h)``.

    ``goodput = E[slices] * chips / 4096`` (so a slice size that does not divide the pod also loses the
    packing remainder even at 100% availability: ``max_goodput``).
    """
    info = check_slice_chips(chips)
    a = check_availability(availability)
    if info["blocks"] == 0:
        groups = HOSTS // info["hosts"]
        expected = groups * a ** info["hosts"]
        max_slices = groups
    elif ocs:
        b = info["blocks"]
        pmf = _binom_pmf(BLOCKS, a**HOSTS_PER_BLOCK)
        expected = sum(p * (h // b) for h, p in enumerate(pmf))
        max_slices = BLOCKS // b
    else:
        b = info["blocks"]
        groups = BLOCKS // b
        expected = groups * a ** (HOSTS_PER_BLOCK * b)
        max_slices = groups
    return {
        "slice_chips": chips,
        "slice_blocks": info["blocks"],
        "slice_hosts": info["hosts"],
        "host_availability": a,
        "machine": "ocs" if ocs else "static",
        "block_availability": a**HOSTS_PER_BLOCK,
        "expected_slices": expected,
        "max_slices": max_slices,
        "goodput": expected * chips / CHIPS,
        "max_goodput": max_slices * chips / CHIPS,
    }


def goodput_monte_carlo(
    chips: int, availability: float, trials: int, seed: int = 0, ocs: bool = True, chunk: int = 4096
) -> dict:
    """Monte Carlo estimate of :func:`goodput_exact`: sample every host up/down with a seeded
    ``numpy.random.default_rng(seed)``, count the slices each machine can form, average."""
    info = check_slice_chips(chips)
    a = check_availability(availability)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise VtpuError(f"--monte-carlo needs a positive number of trials, got {trials!r}")
    rng = np.random.default_rng(seed)
    total = 0.0
    total_sq = 0.0
    done = 0
    while done < trials:
        m = min(chunk, trials - done)
        up = rng.random((m, BLOCKS, HOSTS_PER_BLOCK)) < a
        if info["blocks"] == 0:
            h = info["hosts"]
            slices = up.reshape(m, HOSTS // h, h).all(axis=2).sum(axis=1)
        else:
            b = info["blocks"]
            healthy = up.all(axis=2)
            if ocs:
                slices = healthy.sum(axis=1) // b
            else:
                g = BLOCKS // b
                slices = healthy[:, : g * b].reshape(m, g, b).all(axis=2).sum(axis=1)
        total += float(slices.sum())
        total_sq += float((slices.astype(np.float64) ** 2).sum())
        done += m
    mean = total / trials
    var = max(total_sq / trials - mean**2, 0.0)
    return {
        "trials": trials,
        "seed": seed,
        "expected_slices": mean,
        "goodput": mean * chips / CHIPS,
        "goodput_stderr": math.sqrt(var / trials) * chips / CHIPS,
    }


def goodput_sweep(chips: int, availabilities: tuple[float, ...] = AVAILABILITY_SWEEP) -> list[dict]:
    rows = []
    for a in availabilities:
        ocs = goodput_exact(chips, a, ocs=True)
        static = goodput_exact(chips, a, ocs=False)
        rows.append(
            {
                "host_availability": a,
                "ocs_goodput": ocs["goodput"],
                "static_goodput": static["goodput"],
                "ocs_gain": ocs["goodput"] / static["goodput"] if static["goodput"] > 0 else None,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- OCS + reconfiguration


@dataclass
class SliceAllocation:
    """A block-multiple slice placed on physical blocks: ``blocks[slot]`` serves slice block ``slot``
    (slots are row-major over the block-level shape ``shape_blocks``)."""

    shape: tuple[int, int, int]
    twisted: bool = False
    blocks: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape = tuple(self.shape)  # type: ignore[assignment]
        self.shape_blocks = tuple(s // BLOCK_EDGE for s in self.shape)
        self.block_topology = Topology("twisted" if self.twisted else "torus", self.shape_blocks)
        if self.twisted and twist_parameters(self.shape) is None:
            raise VtpuError(f"slice {'x'.join(map(str, self.shape))} cannot be twisted")
        if not self.blocks:
            self.blocks = list(range(self.block_topology.n))
        if len(self.blocks) != self.block_topology.n or len(set(self.blocks)) != len(self.blocks):
            raise VtpuError("slice allocation needs one distinct block per slot")

    @property
    def topology(self) -> Topology:
        return Topology("twisted" if self.twisted else "torus", self.shape)

    def chip_position(self, chip: int) -> tuple[int, int, int] | None:
        """The chip's coordinates in the slice torus, or ``None`` if its block is not in the slice."""
        loc = chip_location(chip)
        if loc.block not in self.blocks:
            return None
        slot = self.blocks.index(loc.block)
        sc = self.block_topology.coords(slot)
        return tuple(BLOCK_EDGE * s + p for s, p in zip(sc, loc.block_pos, strict=True))  # type: ignore[return-value]

    def ocs_circuits(self) -> dict[int, dict[int, int]]:
        """Per dimension: north port (block) -> south port (block). All 16 OCSes of a dimension hold the
        same table: link ``i`` of block ``a``'s ``+d`` face goes to link ``i`` of block ``b``'s ``-d``
        face. A twisted slice's twist is a whole number of blocks, so it is just a different table."""
        out: dict[int, dict[int, int]] = {}
        bt = self.block_topology
        for d in range(3):
            out[d] = {self.blocks[s]: self.blocks[bt.step(s, d, +1)] for s in range(bt.n)}
        return out

    def chip_links(self) -> set[tuple[int, int]]:
        """Directed chip links of the slice, in slice node numbers, built from the electrical meshes plus
        the OCS circuits (used to check the OCS tables against :class:`Topology`)."""
        topo = self.topology
        pos_of = {}
        for blk in self.blocks:
            for chip in block_chips(blk):
                pos_of[chip] = topo.node(self.chip_position(chip))
        chip_at = {}
        for blk in self.blocks:
            for chip in block_chips(blk):
                chip_at[(blk, chip_location(chip).block_pos)] = chip
        edges: set[tuple[int, int]] = set()
        circuits = self.ocs_circuits()
        for (blk, pos), chip in chip_at.items():
            for d in range(3):
                q = list(pos)
                q[d] += 1
                if q[d] < BLOCK_EDGE:
                    other = chip_at[(blk, tuple(q))]  # electrical mesh link
                else:
                    q[d] = 0
                    other = chip_at[(circuits[d][blk], tuple(q))]  # optical: + face -> - face
                if other != chip:
                    edges.add((pos_of[chip], pos_of[other]))
                    edges.add((pos_of[other], pos_of[chip]))
        return edges


def _face_link(pos: tuple[int, int, int], dim: int) -> int:
    others = [p for i, p in enumerate(pos) if i != dim]
    return others[0] * BLOCK_EDGE + others[1]


def reconfigure(
    shape: tuple[int, int, int],
    fail_host: int | None = None,
    fail_block: int | None = None,
    twisted: bool = False,
    failed_blocks: tuple[int, ...] = (),
) -> dict:
    """Fail one host or block under a running slice and report the spare and the OCS changes.

    The slice starts on the lowest-numbered healthy blocks (slot order). A failed host takes its whole
    block out (the block's mesh and OCS ports stay wired, but the slice needs all 64 chips). If the block
    serves the slice, the lowest-numbered healthy block outside the slice replaces it in the same slot and
    every OCS table entry that named the failed block is rewritten; other slots keep their blocks.
    """
    if (fail_host is None) == (fail_block is None):
        raise VtpuError("give exactly one of --fail-host or --fail-block")
    if fail_host is not None:
        if isinstance(fail_host, bool) or not 0 <= fail_host < HOSTS:
            raise VtpuError(f"host {fail_host} out of range (0..{HOSTS - 1})")
        failed = fail_host // HOSTS_PER_BLOCK
    else:
        if isinstance(fail_block, bool) or not 0 <= fail_block < BLOCKS:  # type: ignore[operator]
            raise VtpuError(f"block {fail_block} out of range (0..{BLOCKS - 1})")
        failed = int(fail_block)  # type: ignore[arg-type]
    down = set(failed_blocks)
    nblocks = math.prod(s // BLOCK_EDGE for s in shape)
    healthy = [b for b in range(BLOCKS) if b not in down]
    if len(healthy) < nblocks:
        raise VtpuError(
            f"only {len(healthy)} healthy blocks for a {nblocks}-block slice", exit_code=Exit.FAULT
        )
    before = SliceAllocation(tuple(shape), twisted, healthy[:nblocks])
    result: dict = {
        "slice": "x".join(map(str, shape)),
        "twisted": twisted,
        "slice_blocks": nblocks,
        "failed_host": fail_host,
        "failed_block": failed,
        "blocks_before": list(before.blocks),
        "in_slice": False,
        "slot": None,
        "slot_coords": None,
        "restored": True,
        "spare_block": None,
        "blocks_after": list(before.blocks),
        "changes": [],
        "switches_touched": 0,
    }
    if failed not in before.blocks:
        return result
    slot = before.blocks.index(failed)
    spares = [b for b in healthy if b not in before.blocks and b != failed]
    result["in_slice"] = True
    result["slot"] = slot
    result["slot_coords"] = list(before.block_topology.coords(slot))
    if not spares:
        result.update({"restored": False, "blocks_after": None})
        return result
    spare = spares[0]
    after_blocks = list(before.blocks)
    after_blocks[slot] = spare
    after = SliceAllocation(tuple(shape), twisted, after_blocks)
    old, new = before.ocs_circuits(), after.ocs_circuits()
    changes = []
    for d in range(3):
        ports = sorted(set(old[d]) | set(new[d]))
        for north in ports:
            o, n = old[d].get(north), new[d].get(north)
            if o != n:
                for i in range(FACE_LINKS):
                    changes.append(
                        {
                            "switch": f"ocs-{DIM_NAMES[d]}{i:02d}",
                            "dim": DIM_NAMES[d],
                            "link": i,
                            "north_port": north,
                            "old_south_port": o,
                            "new_south_port": n,
                        }
                    )
    result.update(
        {
            "restored": True,
            "spare_block": spare,
            "blocks_after": after_blocks,
            "changes": changes,
            "switches_touched": len({c["switch"] for c in changes}),
        }
    )
    return result
