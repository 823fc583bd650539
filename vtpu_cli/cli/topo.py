"""``vtpu topo``: topology figures and the TPU v4 pod simulator (see docs/topo.md).

Every command prints a rich table, or the same figures as JSON with ``--json``. Bad input raises
:class:`~vtpu_cli.core.errors.VtpuError`, which propagates to the main CLI (exit code 2). The heavy modules
(:mod:`vtpu_cli.pod.planner`, SciPy) are imported inside the commands so ``vtpu --help`` stays fast.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from vtpu_cli.core.errors import Exit, VtpuError

REQUIRED = ...


class Opt:
    """A ``--flag`` of a topo command, declared as the parameter's default (the argparse parser is built
    from the signatures, so each command's options sit next to its code)."""

    def __init__(self, default, *flags: str, help: str = "", metavar: str | None = None):
        self.default, self.flags, self.help, self.metavar = default, flags, help, metavar


class Arg(Opt):
    """A positional argument of a topo command."""

    def __init__(self, default, *, help: str = "", metavar: str | None = None):
        super().__init__(default, help=help, metavar=metavar)


class Commands:
    """The topo sub-commands, registered with :meth:`command`."""

    def __init__(self, help: str):
        self.help = help
        self.registered: dict[str, object] = {}

    def command(self, name: str | None = None):
        def deco(fn):
            self.registered[name or fn.__name__] = fn
            return fn

        return deco


app = Commands(
    "Topologies (ring, torus, twisted torus) and the TPU v4 pod simulator: coordinates, "
    "all-to-all, all-reduce, goodput and OCS reconfiguration."
)

JSON_OPT = Opt(False, "--json", help="Print the figures as JSON on stdout instead of a table.")
TWISTED_OPT = Opt(False, "--twisted", help="Use the twisted torus (k x k x 2k or k x 2k x 2k).")
_TYPES = {"int": int, "float": float, "str": str, "Path": Path}


def build_parser(prog: str = "vtpu topo") -> argparse.ArgumentParser:
    """``vtpu topo``'s parser, one sub-parser per registered command, options read from signatures."""
    parser = argparse.ArgumentParser(prog=prog, description=app.help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, fn in app.registered.items():
        doc = inspect.getdoc(fn) or ""
        first = doc.splitlines()[0].replace("%", "%%") if doc else ""  # argparse %-formats help text
        sp = sub.add_parser(name, help=first, description=doc)
        for pname, param in inspect.signature(fn).parameters.items():
            spec = param.default
            spec.help = spec.help.replace("%", "%%") if "%%" not in spec.help else spec.help
            kind = _TYPES.get(str(param.annotation).split("|")[0].strip())
            if isinstance(spec, Arg):
                sp.add_argument(pname, type=kind, metavar=spec.metavar or pname.upper(), help=spec.help)
            elif param.annotation in ("bool", bool):
                sp.add_argument(*spec.flags, dest=pname, action="store_true", help=spec.help)
            else:
                required = spec.default is REQUIRED
                sp.add_argument(
                    *spec.flags,
                    dest=pname,
                    type=kind,
                    default=None if required else spec.default,
                    required=required,
                    metavar=spec.metavar or spec.flags[-1].lstrip("-").upper().replace("-", "_"),
                    help=spec.help,
                )
    return parser


def run(argv: list[str]) -> int:
    """Parse and run one topo command; its exit code (usage errors exit 2 through argparse, bad
    figures raise :class:`VtpuError`)."""
    if not argv:
        argv = ["--help"]
    ns = vars(build_parser().parse_args(argv))
    fn = app.registered[ns.pop("command")]
    code = fn(**ns)
    return int(code or 0)


# ---------------------------------------------------------------------------------------------- helpers


def require_scipy(what: str) -> None:
    """The LP solver is an extra (``vtpu[pod]``) so the default install stays light: say how to get it."""
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        raise VtpuError(
            f"{what} needs SciPy's LP solver, which is not installed",
            hint="pip install 'vtpu[pod]'",
            exit_code=Exit.ERROR,
        ) from None


def _emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _table(title: str, columns: list[str], rows: list[list], caption: str | None = None):
    from rich.table import Table

    t = Table(title=title, caption=caption)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", no_wrap=i < 2)
    for r in rows:
        t.add_row(*[_fmt(v) for v in r])
    return t


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def _topology(shape: str, twisted: bool):
    from vtpu_cli.fleet.topology import Topology, parse_shape, parse_topology

    if ":" in shape:
        topo = parse_topology(shape)
        if twisted and topo.kind != "twisted":
            raise VtpuError(f"--twisted conflicts with {shape!r}", hint=f"use twisted:{shape.split(':')[1]}")
        return topo
    return Topology("twisted" if twisted else "torus", parse_shape(shape))


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`vtpu_cli.core.fileio.write_atomic`)."""
    from vtpu_cli.core.fileio import write_atomic

    directory = Path(path).parent if str(Path(path).parent) else Path(".")
    if not directory.is_dir():
        raise VtpuError(f"cannot write {path}: directory {directory} does not exist")
    write_atomic(path, data)


# ---------------------------------------------------------------------------------------------- coords


@app.command()
def coords(
    chip: int = Opt(None, "--chip", help="Show one chip (0..4095)."),
    block: int = Opt(None, "--block", help="Show the 64 chips of one block/rack (0..63)."),
    host: int = Opt(None, "--host", help="Show the 4 chips of one host (0..1023)."),
    lookup: str = Opt(None, "--lookup", help="Find the chip at a phext coordinate."),
    all_chips: bool = Opt(False, "--all", help="Show all 4096 chips."),
    as_json: bool = JSON_OPT,
) -> None:
    """Chip <-> phext coordinate <-> block/rack/host table (default: block 0)."""
    from vtpu_cli.pod import planner as pod

    chosen = [x is not None for x in (chip, block, host, lookup)] + [all_chips]
    if sum(chosen) > 1:
        raise VtpuError("give at most one of --chip, --block, --host, --lookup, --all")
    if chip is not None:
        chips = [chip]
    elif host is not None:
        chips = pod.host_chips(host)
    elif lookup is not None:
        chips = [pod.coord_to_chip(lookup)]
    elif all_chips:
        chips = list(range(pod.CHIPS))
    else:
        chips = pod.block_chips(block if block is not None else 0)
    locs = [pod.chip_location(c) for c in chips]
    if as_json:
        _emit_json({"chips": [loc.as_dict() for loc in locs]})
        return
    rows = [
        [
            loc.chip,
            loc.coordinate,
            loc.block,
            loc.host,
            loc.chip_in_host,
            ",".join(map(str, loc.block_pos)),
            ",".join(map(str, loc.pod_pos)),
        ]
        for loc in locs
    ]
    _console().print(
        _table(
            "TPU v4 chips: phext coordinate pod.rack.host/x.y.z/gx.gy.gz",
            ["chip", "coordinate", "block/rack", "host", "chip on host", "pos in block", "pos in pod"],
            rows,
        )
    )


# ---------------------------------------------------------------------------------------------- show


@app.command()
def show(
    shape: str = Arg(
        REQUIRED, metavar="SHAPE", help="Shape like 4x4x8 (a torus), or a spec like ring:8 or twisted:4x4x8."
    ),
    twisted: bool = TWISTED_OPT,
    link_gbps: float = Opt(50.0, "--link-gbps", help="Bandwidth per link per direction, GB/s."),
    as_json: bool = JSON_OPT,
) -> None:
    """Diameter, average hops and bisection of a topology."""
    if not link_gbps > 0:
        raise VtpuError(f"--link-gbps must be > 0, got {link_gbps}")
    topo = _topology(shape, twisted)
    s = topo.summary(link_gbps)
    if as_json:
        _emit_json(s)
        return
    rows = [[k, v if not isinstance(v, list) else "x".join(map(str, v))] for k, v in s.items()]
    _console().print(_table(f"topology {topo.spec}", ["figure", "value"], rows))


# ---------------------------------------------------------------------------------------------- alltoall


@app.command()
def alltoall(
    shape: str = Arg(REQUIRED, metavar="SHAPE", help="Torus shape like 4x4x8."),
    twisted: bool = TWISTED_OPT,
    link_gbps: float = Opt(50.0, "--link-gbps", help="Bandwidth per link per direction, GB/s."),
    as_json: bool = JSON_OPT,
) -> None:
    """All-to-all throughput per chip: best minimal-path routing (LP, HiGHS) versus dimension order."""
    from vtpu_cli.pod import planner as pod

    if not link_gbps > 0:
        raise VtpuError(f"--link-gbps must be > 0, got {link_gbps}")
    topo = _topology(shape, twisted)
    if topo.kind == "ring":
        raise VtpuError("alltoall takes a torus shape", hint=f"use {topo.n} (a 1-D torus is a ring)")
    require_scipy("vtpu topo alltoall")
    r = pod.alltoall_report(topo.shape, twisted=topo.kind == "twisted", link_gbps=link_gbps)
    if as_json:
        _emit_json(r)
        return
    keys = [
        "per_chip_gbps",
        "per_pair_gbps",
        "per_chip_link_fraction",
        "dimension_order_per_chip_gbps",
        "hop_bound_gbps",
        "bisection_bound_gbps",
        "bisection_links",
        "regular_per_chip_gbps",
        "twist_gain",
        "lp_variables",
        "lp_constraints",
        "lp_solve_s",
    ]
    rows = [[k, r[k]] for k in keys if k in r]
    _console().print(
        _table(
            f"all-to-all on {r['topology']} ({r['nodes']} chips)",
            ["figure", "value"],
            rows,
            caption=r["routing_model"],
        )
    )


# ---------------------------------------------------------------------------------------------- allreduce


@app.command()
def allreduce(
    shape: str = Arg(REQUIRED, metavar="SHAPE", help="Torus shape like 4x4x8."),
    nbytes: int = Opt(REQUIRED, "--bytes", help="Bytes each chip contributes (and receives reduced)."),
    twisted: bool = TWISTED_OPT,
    link_gbps: float = Opt(50.0, "--link-gbps", help="Bandwidth per link per direction, GB/s."),
    as_json: bool = JSON_OPT,
) -> None:
    """All-reduce time under ring, bidirectional-ring and per-dimension-ring models."""
    from vtpu_cli.pod import planner as pod

    if not link_gbps > 0:
        raise VtpuError(f"--link-gbps must be > 0, got {link_gbps}")
    topo = _topology(shape, twisted)
    r = pod.allreduce_report(topo.shape, nbytes, twisted=topo.kind == "twisted", link_gbps=link_gbps)
    if as_json:
        _emit_json(r)
        return
    rows = [
        ["ring (one direction)", r["ring_s"] * 1e3],
        ["bidirectional ring", r["bidirectional_ring_s"] * 1e3],
        [
            "per-dimension bidirectional rings",
            None if r["dimension_rings_s"] is None else r["dimension_rings_s"] * 1e3,
        ],
        ["lower bound (all links)", r["lower_bound_s"] * 1e3],
    ]
    _console().print(
        _table(
            f"all-reduce of {nbytes} bytes on {r['topology']} ({r['nodes']} chips, {link_gbps:g} GB/s links)",
            ["model", "time (ms)"],
            rows,
        )
    )


# ---------------------------------------------------------------------------------------------- goodput


@app.command()
def goodput(
    slice_chips: int = Opt(
        REQUIRED, "--slice", help="Slice size in chips: 4, 8, 16, 32 or a multiple of 64."
    ),
    availability: float = Opt(
        REQUIRED, "--host-availability", help="Probability each host is up, in (0, 1], e.g. 0.995."
    ),
    static: bool = Opt(False, "--static", help="A static machine (fixed block groups) instead of OCS."),
    trials: int = Opt(0, "--monte-carlo", help="Also estimate by Monte Carlo with this many trials."),
    seed: int = Opt(0, "--seed", help="Seed of the Monte Carlo RNG."),
    as_json: bool = JSON_OPT,
) -> None:
    """Expected goodput of a pod serving slices of one size (exact binomial, optional Monte Carlo)."""
    from vtpu_cli.pod import planner as pod

    if trials < 0:
        raise VtpuError(f"--monte-carlo must be >= 0, got {trials}")
    r = pod.goodput_exact(slice_chips, availability, ocs=not static)
    if trials:
        r["monte_carlo"] = pod.goodput_monte_carlo(slice_chips, availability, trials, seed, ocs=not static)
    if as_json:
        _emit_json(r)
        return
    rows = [[k, v] for k, v in r.items() if k != "monte_carlo"]
    if trials:
        mc = r["monte_carlo"]
        rows += [
            ["monte_carlo_goodput", mc["goodput"]],
            ["monte_carlo_stderr", mc["goodput_stderr"]],
            ["monte_carlo_trials", mc["trials"]],
            ["monte_carlo_seed", mc["seed"]],
        ]
    _console().print(
        _table(f"goodput, {slice_chips}-chip slices ({r['machine']})", ["figure", "value"], rows)
    )


@app.command("goodput-sweep")
def goodput_sweep(
    slice_chips: int = Opt(
        REQUIRED, "--slice", help="Slice size in chips: 4, 8, 16, 32 or a multiple of 64."
    ),
    plot: Path = Opt(None, "--plot", help="Also write a plot: FILE.svg (always) or FILE.png (matplotlib)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Goodput with OCS versus a static machine for host availability 99.0% .. 99.9%."""
    from vtpu_cli.pod import planner as pod

    pod.check_slice_chips(slice_chips)
    if plot is not None and plot.suffix.lower() not in (".svg", ".png"):
        raise VtpuError(f"cannot plot to {plot}", hint="use a .svg or .png file name")
    rows = pod.goodput_sweep(slice_chips)
    if plot is not None:
        write_plot(plot, slice_chips, rows)
    if as_json:
        _emit_json({"slice_chips": slice_chips, "rows": rows, "plot": str(plot) if plot else None})
        return
    table_rows = [
        [f"{r['host_availability'] * 100:.1f}%", r["ocs_goodput"], r["static_goodput"], r["ocs_gain"]]
        for r in rows
    ]
    _console().print(
        _table(
            f"goodput of {slice_chips}-chip slices versus host availability",
            ["host availability", "OCS goodput", "static goodput", "OCS / static"],
            table_rows,
            caption=f"plot written to {plot}" if plot else None,
        )
    )


def render_svg(slice_chips: int, rows: list[dict]) -> str:
    """A small hand-written SVG line chart of the sweep (no plotting library)."""
    w, h, left, right, top, bottom = 640, 400, 70, 20, 40, 60
    pw, ph = w - left - right, h - top - bottom
    xs = [r["host_availability"] for r in rows]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1e-3

    def px(a: float) -> float:
        return left + (a - x0) / (x1 - x0) * pw

    def py(g: float) -> float:
        return top + (1.0 - g) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="14">'
        f"Goodput of {slice_chips}-chip slices vs host availability (TPU v4 pod model)</text>",
    ]
    for i in range(6):
        g = i / 5
        y = py(g)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{g:.1f}</text>')
    for a in xs:
        x = px(a)
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 20}" text-anchor="middle">{a * 100:.1f}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 15}" text-anchor="middle">host availability (%)</text>')
    out.append(
        f'<text x="18" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {top + ph / 2})">'
        "goodput (fraction of 4096 chips)</text>"
    )
    for key, colour, label, ly in (
        ("ocs_goodput", "#1f77b4", "with OCS (any healthy blocks)", top + 16),
        ("static_goodput", "#d62728", "static (fixed block groups)", top + 34),
    ):
        pts = " ".join(f"{px(r['host_availability']):.1f},{py(r[key]):.1f}" for r in rows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for r in rows:
            cx, cy = px(r["host_availability"]), py(r[key])
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>')
        out.append(
            f'<line x1="{left + 12}" y1="{ly}" x2="{left + 36}" y2="{ly}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{left + 42}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_plot(path: Path, slice_chips: int, rows: list[dict]) -> None:
    path = Path(path)
    if path.suffix.lower() == ".svg":
        atomic_write(path, render_svg(slice_chips, rows).encode())
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise VtpuError(
            "PNG plots need matplotlib, which is not installed",
            hint="write an SVG instead (--plot goodput.svg) or pip install matplotlib",
            exit_code=Exit.ERROR,
        ) from exc
    import io

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs = [r["host_availability"] * 100 for r in rows]
    ax.plot(xs, [r["ocs_goodput"] for r in rows], "o-", label="with OCS")
    ax.plot(xs, [r["static_goodput"] for r in rows], "o-", label="static")
    ax.set_xlabel("host availability (%)")
    ax.set_ylabel("goodput (fraction of 4096 chips)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{slice_chips}-chip slices")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------- reconfigure


@app.command()
def reconfigure(
    fail_host: int = Opt(None, "--fail-host", help="Host that fails (0..1023)."),
    fail_block: int = Opt(None, "--fail-block", help="Block (rack) that fails (0..63)."),
    shape: str = Opt("12x16x16", "--shape", help="Running slice, 4i x 4j x 4k chips."),
    twisted: bool = TWISTED_OPT,
    as_json: bool = JSON_OPT,
) -> int | None:
    """Fail a host or block under a running slice: the spare block and the OCS entries that change."""
    from vtpu_cli.pod import planner as pod

    slice_shape = pod.parse_slice_shape(shape)
    r = pod.reconfigure(slice_shape, fail_host=fail_host, fail_block=fail_block, twisted=twisted)
    if as_json:
        _emit_json(r)
    else:
        con = _console()
        summary = [
            ["slice", r["slice"] + (" (twisted)" if twisted else "")],
            ["failed host", r["failed_host"]],
            ["failed block", r["failed_block"]],
            ["block in slice", r["in_slice"]],
            ["slot", r["slot"]],
            ["spare block", r["spare_block"]],
            ["restored", r["restored"]],
            ["OCS entries changed", len(r["changes"])],
        ]
        con.print(_table("OCS reconfiguration", ["figure", "value"], summary))
        if r["changes"]:
            # the 16 OCSes of a dimension change identically: show one row per (dim, north port)
            grouped: dict[tuple, int] = {}
            for c in r["changes"]:
                key = (c["dim"], c["north_port"], c["old_south_port"], c["new_south_port"])
                grouped[key] = grouped.get(key, 0) + 1
            rows = [
                [f"ocs-{d}00..ocs-{d}15 ({count})", f"north {n}", _fmt(o), _fmt(nw)]
                for (d, n, o, nw), count in grouped.items()
            ]
            con.print(
                _table(
                    "OCS routing-table changes (north port = block's +face, south port = block's -face)",
                    ["switches", "port", "old south", "new south"],
                    rows,
                )
            )
    if not r["restored"]:
        return int(Exit.FAULT)
