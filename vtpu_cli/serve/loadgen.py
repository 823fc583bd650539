"""A closed-loop load generator for `vtpu serve` (how docs/serve.md's numbers were measured).

    python -m vtpu_cli.serve.loadgen http://127.0.0.1:8080 --concurrency 1,4,8 --requests 2 --max-tokens 16

For each concurrency C, C clients each send `--requests` streamed greedy completions back to back.
Reported per C: requests/s and generated tokens/s (over the wall time of the phase), time to first
token (first SSE chunk) and whole-request latency as p50/p99, the server's mean decode batch, and its
peak resident memory sampled from /health during the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROMPTS = [
    "The quick brown fox jumps over",
    "A BitNet model keeps every linear weight in",
    "Numbers such as 12, 256 and 4096",
    "Hello world! This is a test of",
    "The virtual tensor processor runs",
    "The lazy dog sleeps in the sun while",
    "words like attention, norm, rope and cache",
    "communication between sentrons",
]


@dataclass
class Phase:
    concurrency: int
    requests: int
    wall_s: float
    requests_per_s: float
    tokens_per_s: float
    completion_tokens: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    mean_batch: float
    peak_rss_mib: float | None


async def _one(client: Any, url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """(time to first chunk, total time, completion tokens) of one streamed greedy completion."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()[:200]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if first is None:
                first = time.perf_counter() - t0
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return first or 0.0, time.perf_counter() - t0, tokens


async def run_phase(url: str, concurrency: int, per_client: int, max_tokens: int) -> Phase:
    import httpx

    async with httpx.AsyncClient(
        timeout=httpx.Timeout(600.0), limits=httpx.Limits(max_connections=64)
    ) as client:
        model = (await client.get(url + "/v1/models")).json()["data"][0]["id"]
        before = (await client.get(url + "/health")).json()
        results: list[tuple[float, float, int]] = []
        peak = [before.get("rss_bytes") or 0]
        done = asyncio.Event()

        async def sampler() -> None:
            while not done.is_set():
                h = (await client.get(url + "/health")).json()
                peak[0] = max(peak[0], h.get("rss_bytes") or 0)
                await asyncio.sleep(0.2)

        async def worker(w: int) -> None:
            for k in range(per_client):
                prompt = PROMPTS[(w * per_client + k) % len(PROMPTS)]
                results.append(await _one(client, url, model, prompt, max_tokens))

        mon = asyncio.create_task(sampler())
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
        done.set()
        await mon
        after = (await client.get(url + "/health")).json()
    steps = after["decode_steps"] - before["decode_steps"]
    seqs = after["mean_batch"] * after["decode_steps"] - before["mean_batch"] * before["decode_steps"]
    ttft = np.array([r[0] for r in results]) * 1e3
    lat = np.array([r[1] for r in results]) * 1e3
    tokens = sum(r[2] for r in results)
    return Phase(
        concurrency=concurrency,
        requests=len(results),
        wall_s=round(wall, 3),
        requests_per_s=round(len(results) / wall, 3),
        tokens_per_s=round(tokens / wall, 2),
        completion_tokens=tokens,
        ttft_p50_ms=round(float(np.percentile(ttft, 50)), 1),
        ttft_p99_ms=round(float(np.percentile(ttft, 99)), 1),
        latency_p50_ms=round(float(np.percentile(lat, 50)), 1),
        latency_p99_ms=round(float(np.percentile(lat, 99)), 1),
        mean_batch=round(seqs / steps, 2) if steps else 0.0,
        peak_rss_mib=round(peak[0] / 2**20, 1) if peak[0] else None,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vtpu_cli.serve.loadgen", description=__doc__.split("\n")[0])
    ap.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--concurrency", default="1,4,8", help="comma-separated client counts (default 1,4,8)")
    ap.add_argument("--requests", type=int, default=4, help="requests per client per phase (default 4)")
    ap.add_argument("--max-tokens", type=int, default=16, help="tokens per completion (default 16)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    import httpx

    url = args.url.rstrip("/")
    phases = []
    try:
        for c in (int(x) for x in args.concurrency.split(",")):
            ph = asyncio.run(run_phase(url, c, args.requests, args.max_tokens))
            phases.append(ph)
            print(
                f"c={ph.concurrency}: {ph.requests} req in {ph.wall_s:.1f} s: {ph.requests_per_s:.2f} req/s, "
                f"{ph.tokens_per_s:.1f} tok/s, TTFT p50 {ph.ttft_p50_ms:.0f} ms p99 {ph.ttft_p99_ms:.0f} ms, "
                f"latency p50 {ph.latency_p50_ms:.0f} ms p99 {ph.latency_p99_ms:.0f} ms, "
                f"mean batch {ph.mean_batch}, peak RSS {ph.peak_rss_mib} MiB",
                flush=True,
            )
    except (OSError, RuntimeError, ValueError, KeyError, httpx.HTTPError) as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([asdict(p) for p in phases], fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
