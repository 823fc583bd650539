"""Random BitNet b1.58 models at real size (e.g. the 2B-4T shape) as a llama.cpp TQ2_0 GGUF, streamed.

`synth.py` writes tiny models in every format from one in-memory set of weights; at 2 billion weights
that would need several GB. This writer generates and encodes one matrix at a time and streams it into
the file (`gguf.GGUFWriter` tensor infos first, then the data in the same order), so memory stays at
about one matrix. The file has the real layout: TQ2_0 projections, an f16 tied embedding, f32 norms, and
a byte-level BPE trained on the built-in corpus whose vocabulary is padded to `vocab` with reserved
control tokens (llama.cpp and vtpu both load it). Values are non-dyadic (normal f16 embedding, normal
norm weights) like `bench_generate`, so int8 rounding ties are rare.

    python programs/models/make_large.py OUT.gguf --preset 2b4t
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtpu_cli.models.formats import tq2_0_encode
from vtpu_cli.models.synth import BOS, EOS, GGUF_ROLES, train_tokenizer, write_gguf_header


@dataclass(frozen=True)
class LargeSpec:
    """Shape of a large synthetic model (hidden and ffn multiples of 256: TQ2_0 blocks)."""

    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    rope_theta: float = 500000.0
    rms_eps: float = 1e-5
    max_ctx: int = 4096
    seed: int = 7
    embed_std: float = 0.4  # smaller values give smaller logits (a perplexity that is not astronomic)

    @property
    def params(self) -> int:
        """Weights: ternary projections plus the (tied) embedding."""
        hd = self.hidden // self.heads
        q, kv = self.heads * hd, self.kv_heads * hd
        per = self.hidden * (2 * q + 2 * kv) + 3 * self.hidden * self.ffn
        return self.layers * per + self.vocab * self.hidden


PRESETS = {
    # bitnet-b1.58-2B-4T
    "2b4t": LargeSpec(2560, 6912, 30, 20, 5, 128256),
    # ~100M parameters (75.5M ternary + 24.6M embedding), llama.cpp's "small model" comparison point
    "100m": LargeSpec(768, 2048, 12, 12, 4, 32000),
    # the tiny test shape of synth.py, at a real-layout vocabulary size
    "tiny": LargeSpec(256, 512, 2, 4, 2, 300, rope_theta=10000.0, max_ctx=256),
}


def _shapes(s: LargeSpec) -> dict[str, tuple[int, int]]:
    hd = s.hidden // s.heads
    q, kv = s.heads * hd, s.kv_heads * hd
    return {
        "wq": (q, s.hidden),
        "wk": (kv, s.hidden),
        "wv": (kv, s.hidden),
        "wo": (s.hidden, q),
        "w_gate": (s.ffn, s.hidden),
        "w_up": (s.ffn, s.hidden),
        "w_down": (s.hidden, s.ffn),
    }


def _vocab(s: LargeSpec, work: Path) -> dict[str, object]:
    """GGUF tokenizer metadata: the corpus BPE, padded with reserved control tokens to ``s.vocab``."""
    from vtpu_cli.models.tokenizer import gguf_vocab_from_tokenizer_json

    tok = train_tokenizer(min(s.vocab, 300))
    tj = work / "tokenizer.json"
    tok.save(str(tj))  # type: ignore[attr-defined]
    meta = gguf_vocab_from_tokenizer_json(tj)
    tokens = list(meta["tokenizer.ggml.tokens"])  # type: ignore[arg-type]
    types = list(meta["tokenizer.ggml.token_type"])  # type: ignore[arg-type]
    if len(tokens) > s.vocab:
        raise ValueError(f"vocab {s.vocab} is smaller than the corpus tokenizer ({len(tokens)})")
    pad = s.vocab - len(tokens)
    tokens += [f"<|reserved_{i}|>" for i in range(pad)]
    types += [3] * pad  # CONTROL
    meta["tokenizer.ggml.tokens"] = tokens
    meta["tokenizer.ggml.token_type"] = types
    meta["bos"] = tok.token_to_id(BOS)  # type: ignore[attr-defined]
    meta["eos"] = tok.token_to_id(EOS)  # type: ignore[attr-defined]
    tj.unlink()
    return meta


def write_large_tq2_0(path: str | Path, spec: LargeSpec, progress=None) -> Path:
    """Write ``spec`` as a TQ2_0 GGUF at ``path`` (atomically: a temporary name, then renamed)."""
    import gguf

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    s = spec
    rng = np.random.default_rng(s.seed)
    meta = _vocab(s, path.parent)
    wr = gguf.GGUFWriter(tmp, "bitnet")
    write_gguf_header(wr, s, s.vocab, gguf.LlamaFileType.MOSTLY_TQ2_0, meta, meta["bos"], meta["eos"])

    # Tensor infos first (sizes only), then the data generated in the same order.
    shapes = _shapes(s)
    plan: list[tuple[str, tuple[int, ...], object, int, object]] = []
    plan.append(("token_embd.weight", (s.vocab, s.hidden), np.float16, s.vocab * s.hidden * 2, None))
    plan.append(("output_norm.weight", (s.hidden,), np.float32, s.hidden * 4, None))
    norms = {"attn_norm": s.hidden, "attn_sub_norm": s.hidden, "ffn_norm": s.hidden, "ffn_sub_norm": s.ffn}
    for i in range(s.layers):
        for role, name in GGUF_ROLES.items():
            r, c = shapes[role]
            nbytes = r * (c // 256) * 66
            plan.append((f"blk.{i}.{name}.weight", (r, c // 256 * 66), np.uint8, nbytes, role))
        for n, size in norms.items():
            plan.append((f"blk.{i}.{n}.weight", (size,), np.float32, size * 4, None))
    for name, shape, dt, nbytes, role in plan:
        raw = gguf.GGMLQuantizationType.TQ2_0 if role else None
        wr.add_tensor_info(name, shape, np.dtype(dt), nbytes, raw_dtype=raw)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_ti_data_to_file()
    for k, (name, shape, _dt, _nb, role) in enumerate(plan):
        if role:
            r, c = shapes[role]
            w = rng.integers(-1, 2, size=(r, c), dtype=np.int8)
            data = tq2_0_encode(w, float(rng.integers(48, 112)) / 256)
        elif name == "token_embd.weight":
            data = np.empty(shape, np.float16)
            for r0 in range(0, s.vocab, 8192):
                r1 = min(s.vocab, r0 + 8192)
                data[r0:r1] = s.embed_std * rng.standard_normal((r1 - r0, s.hidden), dtype=np.float32)
        else:
            data = (1 + 0.15 * rng.standard_normal(shape)).astype(np.float32)
        wr.write_tensor_data(np.ascontiguousarray(data))
        if progress is not None:
            progress(k + 1, len(plan))
    wr.close()
    tmp.replace(path)
    return path
