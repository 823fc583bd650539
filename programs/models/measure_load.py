"""Measure loading a BitNet checkpoint the way `vtpu generate` does: time and peak resident memory.

Loads MODEL lazily, takes the converted layout from the cache (converting and writing it on a miss),
then reads every page of every weight scroll as a decode step does, and prints one JSON line: load and
convert/map seconds, whether the cache was hit, the peak RSS (VmHWM of this process, MiB) and the
issue's budget (1.2 x ternary bytes + embedding bytes, MiB). Run it twice with the same --cache to see
the first (converting) and the cached start; run it as its own process so the peak is its own.

    python programs/models/measure_load.py MODEL [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from vtpu_cli.models.cache import cache_root, cached_weights
from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.loader import load_model


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is absent -- on Linux that
    one also counts the parent's memory at exec time)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--cache", type=Path, help="layout cache folder (default: the user's, as vtpu generate)")
    a = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        model = load_model(a.model, lazy=True)
        t1 = time.perf_counter()
        weights, hit = cached_weights(model, a.cache or cache_root())
        t2 = time.perf_counter()
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    checksum = sum(int(w[::4096].sum()) for w in weights.values())  # one byte per page: all resident
    budget = 1.2 * model.ternary_bytes + model.embedding.raw.nbytes
    out = {
        "model": str(a.model),
        "format": model.fmt,
        "cache_hit": hit,
        "load_s": round(t1 - t0, 3),
        "convert_or_map_s": round(t2 - t1, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "budget_mib": round(budget / 2**20, 1),
        "ternary_mib": round(model.ternary_bytes / 2**20, 1),
        "page_checksum": checksum,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
