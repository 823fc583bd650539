"""Tensor parallelism, paired: the compiled BitNet step on 1 and on N sentrons in one process, on the
same weights, alternating run by run so both see the same machine load.

    python -m vtpu_cli.models.bench_tp [synthetic:2b4t | MODEL] [--sentrons 2] [--prompt 64]
        [--tokens 16] [--rounds 3] [--waits] [--json FILE]

Per round and side: a fresh sequence, a ``--prompt``-token prefill (the model's chunk plan), then
``--tokens`` greedy decode steps (median step time). Both sides must produce the same tokens and the
same logits bit for bit (``shard=cols`` is exact); a difference exits 1. A native two-thread streaming
read of the weight bytes against a one-thread read, interleaved the same way, shows what a second core
can give on the machine at that moment (on a shared host other jobs take it). Prints one JSON object:
medians of prefill and decode tokens/s per side, their ratios (N over 1), the read ratio and, per
side, the PPT translations the JIT served from its slow path (a count that does not depend on the
machine's load), and the prefill's on-CPU time of each sentron thread (``/proc`` schedstat) with the
ratio of the one-sentron thread's to the busiest N-sentron thread's (less disturbed by the load than
the wall clock; it counts a sentron spinning at a barrier as busy). ``--waits`` also logs every barrier
of the N-sentron prefills (the JIT's wait log, ``engines/jit/comm.py``) and reports, per barrier SIW
and sentron, the time busy since the previous barrier, the time spent waiting at it and the slow PPT
translations in between (medians over the rounds): where a two-sentron step loses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vtpu_cli.models.errors import ModelError


def _load(target: str, ctx: int):
    if target == "synthetic" or target.startswith("synthetic:"):
        from vtpu_cli.models.bench_lm import parse_synthetic, synthetic_model
        from vtpu_cli.models.compiled import convert_weights

        _, shape = parse_synthetic(target)
        model = synthetic_model(shape, max(ctx, 256))
        return model, convert_weights(model)
    from vtpu_cli.models.cache import cached_weights
    from vtpu_cli.models.loader import load_model

    model = load_model(Path(target), lazy=True)
    weights, _ = cached_weights(model)
    return model, weights


def _sentron_tids(cm) -> set[int]:
    """Thread ids of the JIT's sentron workers of ``cm``'s engines (kept for an engine's life)."""
    out = set()
    for r in cm.runners.values():
        for w in getattr(getattr(r, "_engine", None), "_workers", None) or ():
            tid = getattr(getattr(w, "thread", None), "native_id", None)
            if tid is not None:
                out.add(tid)
    return out


def _thread_cpu_ns(tids: set[int]) -> dict[int, int]:
    """On-CPU nanoseconds so far of the threads ``tids`` of this process, from ``/proc``
    (``schedstat``): time a thread actually ran, which the host's load changes much less than the wall
    clock (empty where /proc is not there)."""
    out: dict[int, int] = {}
    for tid in tids:
        try:
            out[tid] = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _slow(cm) -> int:
    """PPT translations so far, every compiled variant of ``cm``, not served by the JIT's fast path."""
    return sum(r.mem.stats.hits + r.mem.stats.misses - r.fast_hits for r in cm.runners.values())


def wait_profile(logs: list[tuple[int, np.ndarray]], hz: float) -> dict:
    """Busy and waiting time per barrier SIW and sentron (ms) of one step's wait logs (one per run): a
    sentron is busy from leaving one barrier (or entering the run) to arriving at the next, then waits
    until every member has arrived and it has seen that. Barriers are listed in the order of their
    first occurrence (the first layer's order, then the head's)."""
    from vtpu_cli.engines.jit import comm

    order: list[int] = []
    busy: dict[int, np.ndarray] = {}
    wait: dict[int, np.ndarray] = {}
    slow: dict[int, np.ndarray] = {}
    count: dict[int, int] = {}
    for n, log in logs:
        parts = comm.read_wait_log(n, log)
        k = min(len(e) for _, e in parts)
        for s, (t0, e) in enumerate(parts):
            prev, prev_slow = t0, 0
            for i in range(k):
                pc = int(e["pc"][i])
                if pc not in busy:
                    order.append(pc)
                    busy[pc], wait[pc], slow[pc], count[pc] = np.zeros(n), np.zeros(n), np.zeros(n), 0
                a, lv = int(e["arrive"][i]), int(e["leave"][i])
                busy[pc][s] += (a - prev) / hz * 1e3
                wait[pc][s] += (lv - a) / hz * 1e3
                slow[pc][s] += int(e["slow"][i]) - prev_slow
                prev, prev_slow = lv, int(e["slow"][i])
                count[pc] += s == 0
    tb = sum(busy.values()) if busy else np.zeros(0)
    tw = sum(wait.values()) if wait else np.zeros(0)
    return {
        "busy_ms": [round(float(x), 2) for x in tb],
        "wait_ms": [round(float(x), 2) for x in tw],
        "barriers": [
            {
                "siw": pc,
                "count": count[pc],
                "busy_ms": [round(float(x), 2) for x in busy[pc]],
                "wait_ms": [round(float(x), 2) for x in wait[pc]],
                # slow-path PPT translations in the stretch before it (a count the load cannot change)
                "slow": [int(x) for x in slow[pc]],
            }
            for pc in order
        ],
    }


def _median_profile(profs: list[dict]) -> dict | None:
    """Element-wise medians of several rounds' wait profiles (same barriers in the same order)."""
    if not profs:
        return None

    def med(get) -> list[float]:
        return [round(float(x), 2) for x in np.median(np.array([get(p) for p in profs]), axis=0)]

    out = {"busy_ms": med(lambda p: p["busy_ms"]), "wait_ms": med(lambda p: p["wait_ms"]), "barriers": []}
    for i, b in enumerate(profs[0]["barriers"]):
        out["barriers"].append(
            {
                "siw": b["siw"],
                "count": b["count"],
                "busy_ms": med(lambda p, i=i: p["barriers"][i]["busy_ms"]),
                "wait_ms": med(lambda p, i=i: p["barriers"][i]["wait_ms"]),
                "slow": [int(x) for x in med(lambda p, i=i: p["barriers"][i]["slow"])],
            }
        )
    return out


def _side(
    cm, ids: list[int], tokens: int, waits: bool = False
) -> tuple[float, float, list[int], np.ndarray, dict[str, int], dict | None, dict]:
    """(prefill seconds, median decode step seconds, greedy tokens, last logits, slow-path PPT
    translations of the prefill and of the last decode step, the prefill's wait profile when ``waits``
    and the side has several sentrons, and on-CPU ms: the prefill's per sentron thread, ascending, and
    a decode step's busiest thread, median) of one sequence."""
    from vtpu_cli.engines.jit import comm

    cm.reset()
    n0 = _slow(cm)
    log_on = waits and cm.sentrons > 1
    before = comm.WAIT_LOG_ENTRIES
    if log_on:
        comm.WAIT_LOG_ENTRIES = 16 * (cm.model.config.layers + 2)  # 5 barriers per layer, the head, the end
        comm.wait_logs.clear()
    c0 = _thread_cpu_ns(_sentron_tids(cm))
    t = time.perf_counter()
    try:
        cm.forward(ids)
    finally:
        comm.WAIT_LOG_ENTRIES = before
    pre = time.perf_counter() - t
    c1 = _thread_cpu_ns(_sentron_tids(cm))
    cpu = sorted((c1[k] - c0.get(k, 0)) / 1e6 for k in c1 if c1[k] > c0.get(k, 0))
    prof = None
    if log_on:
        from vtpu_cli.engines.jit.compile import tsc_hz

        prof = wait_profile([(n, log) for n, log, _ in comm.wait_logs], tsc_hz()[0] or 1e9)
        comm.wait_logs.clear()
    slow = {"prefill": _slow(cm) - n0}
    toks, steps, dcpu = [cm.runner.token()], [], []
    for _ in range(tokens):
        n0 = _slow(cm)
        d0 = _thread_cpu_ns(_sentron_tids(cm))
        t = time.perf_counter()
        cm.step(toks[-1])
        steps.append(time.perf_counter() - t)
        d1 = _thread_cpu_ns(_sentron_tids(cm))
        dcpu.append(max([(d1[k] - d0.get(k, 0)) / 1e6 for k in d1] or [0.0]))
        slow["decode_step"] = _slow(cm) - n0
        toks.append(cm.runner.token())
    cpu_all = {"prefill": cpu, "decode_step": statistics.median(dcpu)}
    return pre, statistics.median(steps), toks, cm.runner.logits().copy(), slow, prof, cpu_all


def _read_ratio(buf: np.ndarray, passes: int = 3) -> float | None:
    from vtpu_cli.bench.kernels import _timed, _two_threads
    from vtpu_cli.bench.stream import native_reader

    rd = native_reader()
    if rd is None:
        return None
    one, two = [], []
    for _ in range(passes):
        one.append(_timed(lambda: rd(buf)))
        two.append(_timed(lambda: _two_threads(rd, buf)))
    return statistics.median(one) / statistics.median(two)


def run(
    target: str, sentrons: int, prompt: int, tokens: int, rounds: int, log=print, waits: bool = False
) -> dict:
    from vtpu_cli.models.compiled import CompiledModel

    ctx = max(256, prompt + tokens + 1)
    model, weights = _load(target, ctx)
    sides = {
        n: CompiledModel(model, ctx=ctx, engine="jit", weights=weights, sentrons=n) for n in (1, sentrons)
    }
    for n, cm in sides.items():
        t = time.perf_counter()
        cm.start(cm.plan_sizes(prompt, pos=0) | {1})
        log(f"{n} sentron(s): engine start {time.perf_counter() - t:.1f} s")
    rng = np.random.default_rng(5)
    ids = [int(x) for x in rng.integers(2, model.config.vocab, size=prompt)]
    big = max(weights.values(), key=lambda a: a.nbytes)
    res: dict[int, dict[str, list]] = {n: {"pre": [], "dec": [], "cpu": [], "dcpu": []} for n in sides}
    reads, same = [], True
    out_toks: dict[int, list[int]] = {}
    slow: dict[int, dict[str, int]] = {}
    profs: list[dict] = []
    for r in range(rounds):
        got = {}
        for n, cm in sides.items():
            pre, dec, toks, logits, slow[n], prof, cpu = _side(cm, ids, tokens, waits)
            if prof is not None:
                profs.append(prof)
            res[n]["pre"].append(pre)
            res[n]["dec"].append(dec)
            res[n]["cpu"].append(cpu["prefill"])
            res[n]["dcpu"].append(cpu["decode_step"])
            got[n] = (toks, logits)
            log(f"round {r}: {n} sentron(s): prefill {prompt / pre:.1f} tok/s, decode {1 / dec:.2f} tok/s")
        same = same and got[1][0] == got[sentrons][0] and np.array_equal(got[1][1], got[sentrons][1])
        out_toks = {n: g[0] for n, g in got.items()}
        rr = _read_ratio(big)
        if rr is not None:
            reads.append(rr)
    for n, cm in sides.items():
        if cm.engines_used - {"jit"}:
            # e.g. a native compile over its time limit on a loaded host: the interpreter stood in
            raise ModelError(
                f"{n} sentron(s) ran on {', '.join(sorted(cm.engines_used))}, not only the JIT: timings "
                "would compare engines (VTPU_JIT_COMPILE_TIMEOUT raises the native compile's limit)"
            )
    med = {n: {k: statistics.median(d[k]) for k in ("pre", "dec")} for n, d in res.items()}
    # on-CPU: per round the busiest sentron thread (the one a step waits for), then the median
    cpu_max = {n: [max(c) for c in d["cpu"] if c] for n, d in res.items()}
    cpu_med = {n: statistics.median(v) if v else None for n, v in cpu_max.items()}
    return {
        "model": target,
        "sentrons": sentrons,
        "prompt_tokens": prompt,
        "decode_tokens": tokens,
        "rounds": rounds,
        "prefill_tok_s": {n: prompt / m["pre"] for n, m in med.items()},
        "decode_tok_s": {n: 1 / m["dec"] for n, m in med.items()},
        "prefill_ratio": med[1]["pre"] / med[sentrons]["pre"],
        "decode_ratio": med[1]["dec"] / med[sentrons]["dec"],
        "prefill_s_runs": {n: d["pre"] for n, d in res.items()},
        "decode_step_s_runs": {n: d["dec"] for n, d in res.items()},
        "two_thread_read_ratio": statistics.median(reads) if reads else None,
        # the prefill's on-CPU ms of each sentron thread per round (ascending), and the ratio of the
        # one-sentron thread's to the N-sentron side's busiest thread (medians over rounds): what the
        # split would give with a free core per sentron and no waiting, less disturbed by the load
        "prefill_cpu_ms_runs": {n: d["cpu"] for n, d in res.items()},
        "prefill_cpu_ratio": (cpu_med[1] / cpu_med[sentrons] if cpu_med[1] and cpu_med[sentrons] else None),
        # a decode step's on-CPU ms of its busiest sentron thread (median of the steps, per round)
        "decode_cpu_ms_runs": {n: d["dcpu"] for n, d in res.items()},
        "decode_cpu_ratio": statistics.median(res[1]["dcpu"])
        / max(statistics.median(res[sentrons]["dcpu"]), 1e-9),
        # deterministic, unlike the timings on a shared host: translations the JIT served from its
        # slow path (a coordinate not its PPT set's MRU entry), a prefill's and a decode step's
        "slow_translations": slow,
        "identical": same,
        "tokens": out_toks,
        # --waits: per barrier SIW and sentron of the N-sentron prefill, busy and waiting ms (medians)
        "wait_profile": _median_profile(profs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m vtpu_cli.models.bench_tp", description=__doc__.split("\n")[0]
    )
    ap.add_argument("model", nargs="?", default="synthetic:2b4t", help="a model path or synthetic[:SHAPE]")
    ap.add_argument("--sentrons", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--waits", action="store_true", help="log the N-sentron prefills' barriers (wait profile)"
    )
    ap.add_argument("--json", help="also write the result to this file")
    a = ap.parse_args(argv)
    try:
        if a.sentrons < 2 or a.prompt < 1 or a.tokens < 2 or a.rounds < 1:
            raise ModelError("--sentrons >= 2, --prompt >= 1, --tokens >= 2, --rounds >= 1")
        r = run(
            a.model,
            a.sentrons,
            a.prompt,
            a.tokens,
            a.rounds,
            log=lambda s: print(s, file=sys.stderr),
            waits=a.waits,
        )
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(r, indent=1, default=str)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n", encoding="utf-8")
    return 0 if r["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
