"""Random BitNet b1.58 models at real size (e.g. the 2B-4T shape), streamed, in every format.

`synth.py` writes tiny models in every format from one in-memory set of weights; at 2 billion weights
that would need several GB. This writer generates and encodes one matrix at a time and streams it into
the file (tensor infos or the safetensors header first, then the data in the same order), so memory
stays at about one matrix. Formats (``FORMATS``): a llama.cpp `bitnet` GGUF with TQ2_0 or TQ1_0
projections, a bitnet.cpp `bitnet-b1.58` GGUF with I2_S, both with an f16 tied embedding, f32 norms and
a byte-level BPE trained on the built-in corpus whose vocabulary is padded to `vocab` with reserved
control tokens (llama.cpp and vtpu both load the TQ files); or an HF BitNetForCausalLM directory
(packed U8 [out/4, in] weights, bf16 scales, embedding and norms, the corpus tokenizer). Values are
non-dyadic (normal embedding, normal norm weights) like `bench_generate`, so int8 rounding ties are rare.

    python programs/models/make_large.py OUT.gguf --preset 2b4t [--format tq1_0|i2_s]
    python programs/models/make_large.py OUT_DIR --preset 100m --format hf
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtpu_cli.models.formats import (
    QK_TQ,
    TQ1_0_BLOCK,
    TQ2_0_BLOCK,
    hf_pack,
    i2_s_encode,
    i2_s_nbytes,
    tq1_0_encode,
    tq2_0_encode,
)
from vtpu_cli.models.gguf_file import F16, F32, I2_S, LazyPayload, write_gguf
from vtpu_cli.models.synth import (
    BOS,
    EOS,
    GGUF_ROLES,
    HF_NORMS,
    HF_ROLES,
    hf_config,
    i2_s_meta,
    save_safetensors_streamed,
    train_tokenizer,
    write_gguf_header,
    write_hf_side_files,
)


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


FORMATS = ("tq2_0", "tq1_0", "i2_s", "hf")


def _plan(s: LargeSpec) -> list[tuple[str, tuple[int, ...], str | None]]:
    """Every tensor in file order: (GGUF name, [rows, cols] or [size], ternary role or None)."""
    shapes = _shapes(s)
    plan: list[tuple[str, tuple[int, ...], str | None]] = [
        ("token_embd.weight", (s.vocab, s.hidden), None),
        ("output_norm.weight", (s.hidden,), None),
    ]
    norms = {"attn_norm": s.hidden, "attn_sub_norm": s.hidden, "ffn_norm": s.hidden, "ffn_sub_norm": s.ffn}
    for i in range(s.layers):
        plan += [(f"blk.{i}.{name}.weight", shapes[role], role) for role, name in GGUF_ROLES.items()]
        plan += [(f"blk.{i}.{n}.weight", (size,), None) for n, size in norms.items()]
    return plan


class _Values:
    """The random values, drawn in file order from one generator (the same model whatever the format):
    a ternary matrix and its scale, the embedding (normal, ``embed_std``) or a norm (1 + 0.15 normal)."""

    def __init__(self, s: LargeSpec) -> None:
        self.s = s
        self.rng = np.random.default_rng(s.seed)

    def ternary(self, rows: int, cols: int) -> tuple[np.ndarray, float]:
        w = self.rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
        return w, float(self.rng.integers(48, 112)) / 256

    def embedding(self, dtype: type) -> np.ndarray:
        s = self.s
        data = np.empty((s.vocab, s.hidden), dtype)
        for r0 in range(0, s.vocab, 8192):
            r1 = min(s.vocab, r0 + 8192)
            block = s.embed_std * self.rng.standard_normal((r1 - r0, s.hidden), dtype=np.float32)
            data[r0:r1] = _bf16_bits(block) if dtype == np.uint16 else block
        return data

    def norm(self, shape: tuple[int, ...]) -> np.ndarray:
        return (1 + 0.15 * self.rng.standard_normal(shape)).astype(np.float32)


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_large(path: str | Path, spec: LargeSpec, fmt: str = "tq2_0", progress=None) -> Path:
    """Write ``spec`` at ``path`` in ``fmt`` (``FORMATS``: a llama.cpp TQ2_0/TQ1_0 GGUF, a bitnet.cpp
    I2_S GGUF, or an HF BitNetForCausalLM directory), one tensor at a time, atomically (a temporary
    name, then renamed). The same seed gives the same weights in every format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    if fmt == "hf":
        _write_hf(tmp, spec, progress)
    elif fmt == "i2_s":
        _write_i2_s(tmp, spec, progress)
    else:
        _write_tq(tmp, spec, fmt, progress)
    if path.is_dir():
        shutil.rmtree(path)
    tmp.replace(path)
    return path


def write_large_tq2_0(path: str | Path, spec: LargeSpec, progress=None) -> Path:
    """Write ``spec`` as a TQ2_0 GGUF at ``path`` (``write_large`` with ``fmt="tq2_0"``)."""
    return write_large(path, spec, "tq2_0", progress)


def _write_tq(tmp: Path, s: LargeSpec, fmt: str, progress) -> None:
    import gguf

    qt = gguf.GGMLQuantizationType.TQ2_0 if fmt == "tq2_0" else gguf.GGMLQuantizationType.TQ1_0
    ftype = gguf.LlamaFileType.MOSTLY_TQ2_0 if fmt == "tq2_0" else gguf.LlamaFileType.MOSTLY_TQ1_0
    encode, block = (tq2_0_encode, TQ2_0_BLOCK) if fmt == "tq2_0" else (tq1_0_encode, TQ1_0_BLOCK)
    vals = _Values(s)
    meta = _vocab(s, tmp.parent)
    wr = gguf.GGUFWriter(tmp, "bitnet")
    write_gguf_header(wr, s, s.vocab, ftype, meta, meta["bos"], meta["eos"])
    # Tensor infos first (sizes only), then the data generated in the same order.
    plan = _plan(s)
    for name, shape, role in plan:
        if role:
            r, c = shape
            wr.add_tensor_info(
                name, (r, c // QK_TQ * block), np.dtype(np.uint8), r * c // QK_TQ * block, raw_dtype=qt
            )
        else:
            dt = np.dtype(np.float16 if name == "token_embd.weight" else np.float32)
            wr.add_tensor_info(name, shape, dt, int(np.prod(shape)) * dt.itemsize)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_ti_data_to_file()
    for k, (name, shape, role) in enumerate(plan):
        if role:
            data = encode(*vals.ternary(*shape))
        elif name == "token_embd.weight":
            data = vals.embedding(np.float16)
        else:
            data = vals.norm(shape)
        wr.write_tensor_data(np.ascontiguousarray(data))
        if progress is not None:
            progress(k + 1, len(plan))
    wr.close()


def _write_i2_s(tmp: Path, s: LargeSpec, progress) -> None:
    vals = _Values(s)
    meta = _vocab(s, tmp.parent)
    vocab = {k: v for k, v in meta.items() if k.startswith("tokenizer.ggml.")}
    vocab |= {"tokenizer.ggml.bos_token_id": meta["bos"], "tokenizer.ggml.eos_token_id": meta["eos"]}
    plan = _plan(s)
    done = [0]

    def payload(name: str, shape: tuple[int, ...], role: str | None):
        def make():
            if role:
                out = i2_s_encode(*vals.ternary(*shape))
            elif name == "token_embd.weight":
                out = vals.embedding(np.float16)
            else:
                out = vals.norm(shape)
            done[0] += 1
            if progress is not None:
                progress(done[0], len(plan))
            return out

        if role:
            return LazyPayload(i2_s_nbytes(shape[0] * shape[1]), make)
        itemsize = 2 if name == "token_embd.weight" else 4
        return LazyPayload(int(np.prod(shape)) * itemsize, make)

    tensors = []
    for name, shape, role in plan:
        ggml_type = I2_S if role else (F16 if name == "token_embd.weight" else F32)
        tensors.append((name, tuple(reversed(shape)), ggml_type, payload(name, shape, role)))
    write_gguf(tmp, i2_s_meta(s, vocab), tensors)


def _write_hf(tmp: Path, s: LargeSpec, progress) -> None:
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    vals = _Values(s)
    tok = train_tokenizer(min(s.vocab, 300))
    plan = _plan(s)
    done = [0]
    entries: list = []

    def tick(out: np.ndarray) -> np.ndarray:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(plan))
        return out

    for name, shape, role in plan:
        if name == "token_embd.weight":
            entries.append(
                ("model.embed_tokens.weight", "BF16", shape, lambda: tick(vals.embedding(np.uint16)))
            )
            continue
        if name == "output_norm.weight":
            entries.append(
                ("model.norm.weight", "BF16", shape, lambda sh=shape: tick(_bf16_bits(vals.norm(sh))))
            )
            continue
        layer, base = name.split(".")[1], name.split(".")[2]
        p = f"model.layers.{layer}."
        if role:
            scale: list[float] = []

            def packed(shape=shape, scale=scale) -> np.ndarray:
                w, sc = vals.ternary(*shape)
                scale.append(sc)
                return tick(hf_pack(w))

            r, c = shape
            entries.append((p + HF_ROLES[role] + ".weight", "U8", (r // 4, c), packed))
            entries.append(
                (
                    p + HF_ROLES[role] + ".weight_scale",
                    "BF16",
                    (1,),
                    lambda scale=scale: _bf16_bits(np.array(scale[-1:], np.float32)),
                )
            )
        else:
            entries.append(
                (
                    p + HF_NORMS[base] + ".weight",
                    "BF16",
                    shape,
                    lambda sh=shape: tick(_bf16_bits(vals.norm(sh))),
                )
            )
    save_safetensors_streamed(tmp / "model.safetensors", entries)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)  # type: ignore[attr-defined]
    write_hf_side_files(tmp, hf_config(s, s.vocab, bos, eos, tied=True, scale_mode="multiply"), tok)
