"""The TPU v4 pod model: LP against closed forms, goodput against binomials, coordinates, OCS."""

from __future__ import annotations

import contextlib
import io
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from vtpu_cli.cli.topo import run
from vtpu_cli.core.errors import Exit, VtpuError
from vtpu_cli.fleet.topology import Topology
from vtpu_cli.pod import planner as pod

C = 50.0


# ---------------------------------------------------------------------------------------------- all-to-all


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 12, 16])
def test_lp_ring_closed_form(n):
    lp = pod.alltoall_lp(Topology("ring", (n,)))
    assert lp["per_chip_gbps"] == pytest.approx(pod.ring_alltoall_closed_form(n), rel=1e-7)
    # the formulas themselves: odd 8C/(n+1), even 8C(n-1)/n^2
    assert pod.ring_alltoall_closed_form(9) == pytest.approx(40.0)
    assert pod.ring_alltoall_closed_form(8) == pytest.approx(43.75)


@pytest.mark.parametrize("k", [4, 6])
def test_lp_cube_closed_form(k):
    lp = pod.alltoall_lp(Topology("torus", (k, k, k)))
    assert lp["per_chip_gbps"] == pytest.approx(8 * C * (k**3 - 1) / k**4, rel=1e-7)
    assert pod.cube_alltoall_closed_form(4) == pytest.approx(98.4375)
    # every step direction saturated: the bound is tight
    assert all(v == pytest.approx(C) for v in lp["step_load_gbps"].values())


def test_lp_regular_4x4x8_is_bisection_bound():
    r = pod.alltoall_report((4, 4, 8))
    assert r["per_chip_gbps"] == pytest.approx(C * 127 / 128)  # 32 links, 64 x 64 pairs per direction
    assert r["bisection_bound_gbps"] == pytest.approx(r["per_chip_gbps"])
    assert r["hop_bound_gbps"] > r["per_chip_gbps"]


@pytest.mark.parametrize("shape,gain", [((4, 4, 8), 1.7455), ((4, 8, 8), 1.3913)])
def test_twisted_alltoall_gain(shape, gain):
    r = pod.alltoall_report(shape, twisted=True)
    assert r["twist_gain"] == pytest.approx(gain, abs=1e-3)
    assert r["per_chip_gbps"] == pytest.approx(r["hop_bound_gbps"])  # edge-symmetric: hop bound met
    assert r["dimension_order_per_chip_gbps"] <= r["per_chip_gbps"] + 1e-9


@settings(max_examples=12, deadline=None)
@given(shape=st.lists(st.integers(2, 5), min_size=1, max_size=3))
def test_property_lp_between_dor_and_bounds(shape):
    topo = Topology("torus", shape)
    lp = pod.alltoall_lp(topo)["per_chip_gbps"]
    dor = pod.alltoall_dor(topo)["per_chip_gbps"]
    bounds = pod.alltoall_bounds(topo)
    assert dor <= lp + 1e-6
    assert lp <= bounds["hop_bound_gbps"] + 1e-6
    if bounds["bisection_bound_gbps"] is not None:
        assert lp <= bounds["bisection_bound_gbps"] + 1e-6


def test_allreduce_models():
    r = pod.allreduce_report((4, 4, 4), 64 * 10**6)
    assert r["ring_s"] == pytest.approx(2 * 63 / 64 * 64e6 / 50e9)
    assert r["bidirectional_ring_s"] == pytest.approx(r["ring_s"] / 2)
    assert r["lower_bound_s"] == pytest.approx(r["ring_s"] / 6)
    assert r["dimension_rings_s"] == pytest.approx((3 / 4) * (1 + 1 / 4 + 1 / 16) * 64e6 / 50e9)
    assert pod.allreduce_report((4, 4, 8), 10**6, twisted=True)["dimension_rings_s"] is None
    with pytest.raises(VtpuError):
        pod.allreduce_report((4, 4, 4), 0)


# ---------------------------------------------------------------------------------------------- goodput


@pytest.mark.parametrize("a", [0.99, 0.995, 0.999])
def test_goodput_exact_binomials(a):
    p = a**16
    assert pod.goodput_exact(64, a)["goodput"] == pytest.approx(p)  # E[H]/64
    assert pod.goodput_exact(64, a, ocs=False)["goodput"] == pytest.approx(p)
    half = (binom.sf(31, 64, p) + binom.pmf(64, 64, p)) * 0.5  # floor(H/32) in {0, 1, 2}
    assert pod.goodput_exact(2048, a)["goodput"] == pytest.approx(half)
    assert pod.goodput_exact(2048, a, ocs=False)["goodput"] == pytest.approx(a**512)
    three_q = binom.sf(47, 64, p) * 0.75
    assert pod.goodput_exact(3072, a)["goodput"] == pytest.approx(three_q)
    assert pod.goodput_exact(3072, a, ocs=False)["goodput"] == pytest.approx(0.75 * a**768)
    assert pod.goodput_exact(4096, a)["goodput"] == pytest.approx(a**1024)
    assert pod.goodput_exact(8, a)["goodput"] == pytest.approx(a**2)


def test_goodput_values_and_sweep():
    assert pod.goodput_exact(1024, 0.995)["goodput"] == pytest.approx(0.75147, abs=1e-5)
    assert pod.goodput_exact(1024, 0.995, ocs=False)["goodput"] == pytest.approx(0.27715, abs=1e-5)
    rows = pod.goodput_sweep(1024)
    assert [r["host_availability"] for r in rows] == [round(0.99 + 0.001 * i, 3) for i in range(10)]
    assert all(r["ocs_goodput"] >= r["static_goodput"] for r in rows)
    assert all(x["ocs_goodput"] <= y["ocs_goodput"] for x, y in zip(rows, rows[1:], strict=False))
    assert pod.goodput_exact(192, 1.0)["goodput"] == pytest.approx(63 / 64)  # packing remainder


@pytest.mark.parametrize("chips,ocs", [(1024, True), (1024, False), (256, True), (16, True)])
def test_goodput_monte_carlo_matches_exact(chips, ocs):
    exact = pod.goodput_exact(chips, 0.995, ocs=ocs)["goodput"]
    mc = pod.goodput_monte_carlo(chips, 0.995, 4000, seed=7, ocs=ocs)
    assert abs(mc["goodput"] - exact) <= 4 * mc["goodput_stderr"] + 1e-4
    again = pod.goodput_monte_carlo(chips, 0.995, 4000, seed=7, ocs=ocs)
    assert again["goodput"] == mc["goodput"]


@pytest.mark.parametrize("a", [0.0, -0.1, 1.01, 99.5, float("nan")])
def test_bad_availability(a):
    with pytest.raises(VtpuError):
        pod.goodput_exact(64, a)


@pytest.mark.parametrize("chips", [0, 3, 12, 100, 4160, -64])
def test_bad_slice_sizes(chips):
    with pytest.raises(VtpuError):
        pod.check_slice_chips(chips)


# ---------------------------------------------------------------------------------------------- coordinates


def test_chip_coordinate_bijection():
    coords = [pod.chip_to_coord(c) for c in range(pod.CHIPS)]
    assert len(set(coords)) == pod.CHIPS
    assert all(pod.coord_to_chip(x) == c for c, x in enumerate(coords))
    locs = [pod.chip_location(c) for c in range(pod.CHIPS)]
    assert len({loc.pod_pos for loc in locs}) == pod.CHIPS
    assert len({(loc.block, loc.block_pos) for loc in locs}) == pod.CHIPS
    assert all(loc.host == c // 4 and loc.block == c // 64 for c, loc in enumerate(locs))
    assert pod.chip_to_coord(0) == "1.1.1/1.1.1/1.1.1"
    assert pod.chip_to_coord(4095) == "1.64.16/4.4.4/16.16.16"


def test_host_is_a_2x2_tile():
    for host in (0, 17, 1023):
        pos = [pod.chip_location(c).block_pos for c in pod.host_chips(host)]
        assert len({p[2] for p in pos}) == 1
        assert {p[0] for p in pos} | {p[1] for p in pos} <= set(range(4))
        assert len({(p[0] // 2, p[1] // 2) for p in pos}) == 1


@pytest.mark.parametrize(
    "bad", ["1.1.1/1.1.1/1.1.2", "2.1.1/1.1.1/1.1.1", "1.65.1/1.1.1/1.1.1", "1.1.1/1.1.1", "x"]
)
def test_bad_coordinates(bad):
    with pytest.raises(VtpuError):
        pod.coord_to_chip(bad)


# ---------------------------------------------------------------------------------------------- OCS


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from([(4, 4, 4), (4, 4, 8), (8, 4, 8), (4, 8, 12), (8, 8, 8)]),
    twisted=st.booleans(),
    data=st.data(),
)
def test_ocs_wiring_reproduces_topology(shape, twisted, data):
    from vtpu_cli.fleet.topology import twist_parameters

    if twisted and twist_parameters(shape) is None:
        twisted = False
    nb = math.prod(s // 4 for s in shape)
    blocks = data.draw(st.permutations(list(range(64))))[:nb]
    alloc = pod.SliceAllocation(shape, twisted, list(blocks))
    assert alloc.chip_links() == set(alloc.topology.links())


def test_reconfigure_picks_healthy_spare():
    r = pod.reconfigure((12, 16, 16), fail_host=5)
    assert r["failed_block"] == 0 and r["spare_block"] == 48 and r["restored"]
    assert r["spare_block"] not in r["blocks_before"]
    assert r["blocks_after"][r["slot"]] == 48
    assert len(r["changes"]) == 3 * 48  # per OCS: failed port freed, predecessor re-aimed, spare wired
    assert r["switches_touched"] == pod.OCS_COUNT
    r2 = pod.reconfigure((12, 16, 16), fail_block=3, failed_blocks=(48, 49))
    assert r2["spare_block"] == 50
    assert pod.reconfigure((4, 4, 8), fail_block=40)["in_slice"] is False
    full = pod.reconfigure((16, 16, 16), fail_block=7)
    assert full["restored"] is False and full["spare_block"] is None
    # the rewired slice is still exactly the slice torus
    after = pod.SliceAllocation((12, 16, 16), False, r["blocks_after"])
    assert after.chip_links() == set(after.topology.links())
    with pytest.raises(VtpuError):
        pod.reconfigure((4, 4, 4))
    with pytest.raises(VtpuError):
        pod.reconfigure((4, 4, 4), fail_host=1024)


# ---------------------------------------------------------------------------------------------- CLI


@dataclass
class Invoked:
    """What a topo command did: exit code, stdout, stdout + stderr, and the exception it raised."""

    exit_code: int
    stdout: str
    output: str
    exception: BaseException | None


def invoke(*args) -> Invoked:
    out, err = io.StringIO(), io.StringIO()
    exc = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run(list(args))
        except SystemExit as e:  # argparse: --help (0) and usage errors (2)
            code = e.code if isinstance(e.code, int) else 0
        except VtpuError as e:
            code, exc = int(e.exit_code), e
    return Invoked(code, out.getvalue(), out.getvalue() + err.getvalue(), exc)


def test_cli_show_json():
    r = invoke("show", "4x4x8", "--twisted", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["diameter"] == 6 and data["bisection_links"] == 64
    assert data["bisection_gbps_per_direction"] == 3200.0
    assert "diameter" in invoke("show", "ring:8").stdout


def test_cli_alltoall_allreduce_goodput_json():
    a = json.loads(invoke("alltoall", "4x4x4", "--json").stdout)
    assert a["per_chip_gbps"] == pytest.approx(98.4375)
    ar = json.loads(invoke("allreduce", "4x4x4", "--bytes", "1000000", "--json").stdout)
    assert ar["bidirectional_ring_s"] == pytest.approx(63 / 64 * 1e6 / 50e9)
    g = json.loads(invoke("goodput", "--slice", "1024", "--host-availability", "0.995", "--json").stdout)
    assert g["goodput"] == pytest.approx(0.75147, abs=1e-5)
    g2 = invoke(
        "goodput",
        "--slice",
        "64",
        "--host-availability",
        "0.99",
        "--static",
        "--monte-carlo",
        "500",
        "--json",
    )
    assert json.loads(g2.stdout)["monte_carlo"]["trials"] == 500
    c = json.loads(invoke("coords", "--lookup", "1.64.16/4.4.4/16.16.16", "--json").stdout)
    assert c["chips"][0]["chip"] == 4095
    assert len(json.loads(invoke("coords", "--json").stdout)["chips"]) == 64


@pytest.mark.parametrize(
    "args",
    [
        ("show", "4x4y8"),
        ("show", "4x4x4", "--twisted"),
        ("goodput", "--slice", "100", "--host-availability", "0.99"),
        ("goodput", "--slice", "64", "--host-availability", "1.5"),
        ("reconfigure", "--fail-host", "1", "--fail-block", "2"),
        ("reconfigure", "--fail-block", "1", "--shape", "6x4x4"),
        ("coords", "--lookup", "1.1.1"),
    ],
)
def test_cli_bad_input_raises_vtpu_error(args):
    r = invoke(*args)
    assert isinstance(r.exception, VtpuError)
    assert r.exception.exit_code == Exit.USAGE


def test_cli_sweep_svg_and_png(tmp_path):
    out = tmp_path / "sweep.svg"
    r = invoke("goodput-sweep", "--slice", "1024", "--plot", str(out), "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 10
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.svg"]  # no temp file left behind
    png = invoke("goodput-sweep", "--slice", "1024", "--plot", str(tmp_path / "s.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert isinstance(png.exception, VtpuError) and png.exception.exit_code == Exit.ERROR
    else:
        assert png.exit_code == 0


def test_cli_reconfigure_table_and_json():
    r = invoke("reconfigure", "--fail-host", "5")
    assert r.exit_code == 0 and "spare block" in r.stdout
    j = json.loads(
        invoke("reconfigure", "--fail-block", "0", "--shape", "4x4x8", "--twisted", "--json").stdout
    )
    assert j["spare_block"] == 2 and j["restored"]
    full = invoke("reconfigure", "--fail-block", "0", "--shape", "16x16x16")
    assert full.exit_code == int(Exit.FAULT)


def test_mounted_under_vtpu():
    from vtpu_cli.cli.main import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli(["topo", "show", "4x4x4", "--json"])
    assert rc == 0 and json.loads(out.getvalue())["diameter"] == 6


def test_topo_help_lists_every_command():
    r = invoke("-h")
    assert r.exit_code == 0 and "goodput-sweep" in r.output and "reconfigure" in r.output
    for name in ("coords", "show", "alltoall", "allreduce", "goodput", "goodput-sweep", "reconfigure"):
        h = invoke(name, "-h")
        assert h.exit_code == 0 and "--json" in h.output, name
    assert invoke().exit_code == 0  # no command: the help
    assert invoke("show").exit_code == 2  # a missing SHAPE is a usage error
