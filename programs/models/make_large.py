"""Write a random BitNet b1.58 model at real size (streamed; nothing is downloaded): a llama.cpp TQ2_0
(default) or TQ1_0 GGUF, a bitnet.cpp I2_S GGUF, or an HF safetensors directory. Presets: 2b4t
(bitnet-b1.58-2B-4T: hidden 2560, ffn 6912, 30 layers, 20/5 heads, vocab 128256; 1.17 GB as TQ2_0),
100m (~100M parameters), tiny. The same seed gives the same ternary weights in every format.

    python programs/models/make_large.py OUT.gguf --preset 2b4t [--format tq2_0|tq1_0|i2_s]
        [--layers N] [--vocab V] [--seed S] [--embed-std X]
    python programs/models/make_large.py OUT_DIR --preset 100m --format hf
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from vtpu_cli.models.synth_large import FORMATS, PRESETS, write_large


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="2b4t")
    ap.add_argument("--format", choices=FORMATS, default="tq2_0", help="file format (hf: a directory)")
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

    path = write_large(a.out, spec, a.format, progress)
    print(f"\nwrote {path}: {spec.params / 1e6:.1f}M parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
