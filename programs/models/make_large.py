"""Write a random BitNet b1.58 model at real size as a llama.cpp TQ2_0 GGUF (streamed; nothing is
downloaded). Presets: 2b4t (bitnet-b1.58-2B-4T: hidden 2560, ffn 6912, 30 layers, 20/5 heads, vocab
128256; 1.17 GB), 100m (~100M parameters), tiny.

    python programs/models/make_large.py OUT.gguf --preset 2b4t [--layers N] [--vocab V] [--seed S]
        [--embed-std X]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from vtpu_cli.models.synth_large import PRESETS, write_large_tq2_0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="2b4t")
    for k in ("hidden", "ffn", "layers", "heads", "kv-heads", "vocab", "seed"):
        ap.add_argument(f"--{k}", type=int)
    ap.add_argument("--embed-std", type=float, help="standard deviation of the embedding (default 0.4)")
    a = ap.parse_args(argv)
    over = {
        k.replace("-", "_"): getattr(a, k.replace("-", "_"))
        for k in ("hidden", "ffn", "layers", "heads", "kv-heads", "vocab", "seed")
    }
    over["embed_std"] = a.embed_std
    spec = dataclasses.replace(PRESETS[a.preset], **{k: v for k, v in over.items() if v is not None})
    if spec.hidden % 256 or spec.ffn % 256:
        ap.error("hidden and ffn must be multiples of 256 (TQ2_0 blocks)")

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} tensors", end="", file=sys.stderr)

    path = write_large_tq2_0(a.out, spec, progress)
    print(f"\nwrote {path}: {spec.params / 1e6:.1f}M parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
