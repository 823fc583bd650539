"""Decode/prefill speed of the compiled BitNet step vs the numpy float64 reference, on a synthetic model
built in memory (random ternary weights in the vtpu layout, f16 embedding): no files, no download.

    python -m vtpu_cli.models.bench_generate --hidden 2560 --ffn 6912 --layers 2 --heads 20 --kv-heads 5 \
        --vocab 128256 --tokens 8 --ctx 256

Prints one JSON object: compile/start-up times, tokens/s of the compiled step (engine as asked) and of
the reference doing the same work in the same run, their ratio, and peak RSS. Medians over tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def build(hidden: int, ffn: int, layers: int, heads: int, kv_heads: int, vocab: int, ctx: int, seed: int = 1):
    from vtpu_cli.models.config import ModelConfig
    from vtpu_cli.models.ternary import TernaryMatrix, pack_ternary
    from vtpu_cli.models.weights import BitNetModel, DenseTensor, LayerWeights, layer_shapes

    hd = hidden // heads
    cfg = ModelConfig(hidden, ffn, layers, heads, kv_heads, hd, vocab, 500000.0, 1e-5, True, ctx, 0, (1,))
    rng = np.random.default_rng(seed)
    layers_w = []
    for li in range(layers):
        mats = {}
        for role, (r, c) in layer_shapes(cfg).items():
            w = rng.integers(-1, 2, size=(r, c), dtype=np.int8)
            mats[role] = TernaryMatrix(
                f"l{li}.{role}", r, c, pack_ternary(w), float(rng.integers(48, 112)) / 256
            )
        norms = {
            n: (1 + 0.15 * rng.standard_normal(s)).astype(np.float32)
            for n, s in (
                ("attn_norm", hidden),
                ("attn_sub_norm", hidden),
                ("ffn_norm", hidden),
                ("ffn_sub_norm", ffn),
            )
        }
        layers_w.append(LayerWeights(**norms, **mats))
    emb = DenseTensor(
        "token_embd",
        vocab,
        hidden,
        "f16",
        (0.4 * rng.standard_normal((vocab, hidden))).astype(np.float16),
    )
    onorm = (1 + 0.15 * rng.standard_normal(hidden)).astype(np.float32)
    return BitNetModel(cfg, emb, layers_w, onorm, emb, Path("<synthetic>"), "synthetic")


def main() -> None:
    ap = argparse.ArgumentParser()
    for k, v in (
        ("hidden", 256),
        ("ffn", 512),
        ("layers", 2),
        ("heads", 4),
        ("kv-heads", 2),
        ("vocab", 300),
        ("tokens", 16),
        ("ctx", 64),
    ):
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--engine", default="jit")
    ap.add_argument("--no-reference", action="store_true")
    a = ap.parse_args()
    from vtpu_cli.models.compiled import CompiledModel
    from vtpu_cli.models.generate import peak_rss
    from vtpu_cli.models.reference import Reference

    t0 = time.perf_counter()
    m = build(a.hidden, a.ffn, a.layers, a.heads, a.kv_heads, a.vocab, a.ctx)
    t1 = time.perf_counter()
    cm = CompiledModel(m, ctx=a.ctx, engine=a.engine)
    t2 = time.perf_counter()
    ids = list(np.random.default_rng(2).integers(2, a.vocab, size=a.tokens))
    times, diffs = [], []
    first = time.perf_counter()
    cm.step(int(ids[0]))
    first = time.perf_counter() - first  # includes the engine start (JIT compile or cache load)
    ref = None if a.no_reference else Reference(m, ctx=a.ctx, head="q8")
    rtimes, scale = [], []
    if ref is not None:
        ref.forward([int(ids[0])])
    for t in ids[1:]:
        s = time.perf_counter()
        r = cm.step(int(t))
        times.append(time.perf_counter() - s)
        lc = r.logits().copy()
        if ref is not None:
            s = time.perf_counter()
            lr = ref.forward([int(t)])[-1]
            rtimes.append(time.perf_counter() - s)
            diffs.append(float(np.abs(lc - lr).max()))
            scale.append(float(np.abs(lr).max()))
    med = statistics.median(times)
    out = {
        "shape": vars(a),
        "ternary_weight_bytes": m.ternary_bytes,
        "build_s": t1 - t0,
        "convert_and_phextcc_s": t2 - t1,
        "first_step_s_incl_engine_start": first,
        "engine": sorted(cm.engines_used),
        "siws": cm.runner.report["total"]["siws"],
        "compiled_decode_tok_s": 1 / med,
        "compiled_step_ms_median": med * 1e3,
        "peak_rss_mib": peak_rss() / 2**20,
    }
    if rtimes:
        rmed = statistics.median(rtimes)
        out |= {
            "reference_decode_tok_s": 1 / rmed,
            "speedup_vs_reference": rmed / med,
            "max_abs_logit_diff": max(diffs),
            "logit_diffs": diffs,
            "max_abs_logit": max(scale),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
