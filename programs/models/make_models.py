"""Write a tiny random BitNet b1.58 model in every supported format (nothing is downloaded).

    python programs/models/make_models.py OUT_DIR [--hidden 256 --ffn 512 --layers 2 --heads 4
        --kv-heads 2 --vocab 300 --seed 1234]

OUT_DIR receives `hf/` (config.json, model.safetensors, tokenizer files), `model-tq2_0.gguf`,
`model-tq1_0.gguf` (llama.cpp `bitnet`) and `model-i2_s.gguf` (bitnet.cpp I2_S), all holding the same
ternary weights, so any of them loads to identical vtpu weights.
"""

from __future__ import annotations

import argparse
import sys

from vtpu_cli.models.synth import SynthSpec, write_all


def main(argv: list[str] | None = None) -> int:
    d = SynthSpec()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--hidden", type=int, default=d.hidden, help="multiple of 256 (TQ block size)")
    ap.add_argument("--ffn", type=int, default=d.ffn, help="multiple of 256")
    ap.add_argument("--layers", type=int, default=d.layers)
    ap.add_argument("--heads", type=int, default=d.heads)
    ap.add_argument("--kv-heads", type=int, default=d.kv_heads)
    ap.add_argument("--vocab", type=int, default=d.vocab, help="BPE vocabulary size to train (about)")
    ap.add_argument("--ctx", type=int, default=d.max_ctx)
    ap.add_argument("--seed", type=int, default=d.seed)
    a = ap.parse_args(argv)
    if a.hidden % 256 or a.ffn % 256:
        ap.error("--hidden and --ffn must be multiples of 256 (TQ1_0/TQ2_0 blocks)")
    spec = SynthSpec(a.hidden, a.ffn, a.layers, a.heads, a.kv_heads, a.vocab, max_ctx=a.ctx, seed=a.seed)
    for name, path in write_all(a.out_dir, spec).items():
        print(f"{name:6s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
