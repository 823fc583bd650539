"""Hugging Face BitNet checkpoints: `config.json` + `model.safetensors` (or a sharded index).

The safetensors header (8-byte little-endian length, then JSON: name -> dtype, shape, data_offsets) is
parsed here and each tensor memory-mapped, because numpy has no bfloat16 and we want the raw bits.

Scale convention (read from `quantization_config`):
* `linear_class: "autobitlinear"`, `quantization_mode: "offline"` (bitnet-b1.58-2B-4T): the layer
  computes (x @ W^T) * weight_scale, so the vtpu scale is weight_scale (multiply).
* `linear_class: "bitlinear"` (transformers' default, also when `quantization_config` is absent): the
  layer divides by weight_scale, so the vtpu scale is 1 / weight_scale.
* `quantization_mode: "online"` (bf16 master weights, e.g. the -bf16 repository): weights are float and
  ternarized at load the way the model was trained: scale = mean|W| (clamped to >= 1e-5),
  w = clip(round_half_even(W / scale), -1, 1).
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtpu_cli.models.config import ModelConfig, read_json
from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.formats import hf_decode
from vtpu_cli.models.ternary import TernaryMatrix, pack_codes, packed_cols, row_chunks
from vtpu_cli.models.weights import (
    BitNetModel,
    DenseTensor,
    LayerWeights,
    SourceTernary,
    bf16_to_f32,
    expect_shape,
    layer_shapes,
    norm_sizes,
    release_file,
)

_ST_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "U8": np.uint8,
    "I8": np.int8,
    "F64": np.float64,
}
_ST_KIND = {"F32": "f32", "F16": "f16", "BF16": "bf16"}

_ROLE_NAMES = {
    "wq": "self_attn.q_proj",
    "wk": "self_attn.k_proj",
    "wv": "self_attn.v_proj",
    "wo": "self_attn.o_proj",
    "w_gate": "mlp.gate_proj",
    "w_up": "mlp.up_proj",
    "w_down": "mlp.down_proj",
}
_NORM_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_sub_norm": "self_attn.attn_sub_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_sub_norm": "mlp.ffn_sub_norm",
}


@dataclass(frozen=True)
class STTensor:
    """A memory-mapped safetensors entry: `data` has the file's element type (bf16 as uint16)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray
    file: Path

    def as_float32(self) -> np.ndarray:
        if self.dtype == "BF16":
            return bf16_to_f32(self.data)
        if self.dtype not in ("F32", "F16", "F64"):
            raise ModelError(f"{self.file}: tensor {self.name} has dtype {self.dtype}, expected a float type")
        return np.asarray(self.data, dtype=np.float32)


def read_safetensors(path: Path) -> dict[str, STTensor]:
    """Parse a safetensors header and memory-map every tensor; damage raises ModelError naming the file."""
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelError(f"{path}: truncated safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ModelError(f"{path}: truncated safetensors header ({n} bytes announced)")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: corrupt safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: corrupt safetensors header")
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (b, e) = info["dtype"], tuple(int(s) for s in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: tensor {name}: corrupt header entry") from None
        if dtype not in _ST_DTYPES:
            raise ModelError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        np_dtype = np.dtype(_ST_DTYPES[dtype])
        count = int(np.prod(shape, dtype=np.int64))
        if e - b != count * np_dtype.itemsize or b < 0:
            raise ModelError(f"{path}: tensor {name}: data_offsets disagree with shape {shape}")
        if base + e > size:
            raise ModelError(f"{path}: tensor {name} is truncated (file ends at {size}, needs {base + e})")
        data = buf[base + b : base + e].view(np_dtype).reshape(shape)
        out[name] = STTensor(name, dtype, shape, data, path)
    return out


def _read_all_shards(folder: Path) -> dict[str, STTensor]:
    single = folder / "model.safetensors"
    if single.is_file():
        return read_safetensors(single)
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        raise ModelError(f"{folder}: no model.safetensors (nor model.safetensors.index.json)")
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ModelError(f"{index}: missing key 'weight_map'")
    tensors: dict[str, STTensor] = {}
    for shard in sorted(set(weight_map.values())):
        tensors |= read_safetensors(folder / shard)
    return tensors


def scale_mode(cfg: dict[str, Any], source: str) -> str:
    """'multiply', 'divide' or 'online' (see the module docstring)."""
    qc = cfg.get("quantization_config") or {}
    method = qc.get("quant_method", "bitnet")
    if method != "bitnet":
        raise ModelError(f"{source}: quantization_config.quant_method {method!r} is not supported")
    if qc.get("use_rms_norm"):
        raise ModelError(f"{source}: quantization_config.use_rms_norm is not supported")
    linear = qc.get("linear_class", "bitlinear")
    mode = qc.get("quantization_mode", "offline")
    if linear == "autobitlinear" and mode == "online":
        return "online"
    if mode != "offline" or linear not in ("bitlinear", "autobitlinear"):
        raise ModelError(
            f"{source}: quantization_config linear_class={linear!r} mode={mode!r} is not supported"
        )
    return "multiply" if linear == "autobitlinear" else "divide"


def _absmean_ternarize(t: STTensor, source: str) -> TernaryMatrix:
    """Online mode: ternarize float master weights by absmean, two passes over row chunks."""
    if len(t.shape) != 2:
        raise ModelError(f"{source}: tensor {t.name} must be 2-D, has shape {t.shape}")
    rows, cols = t.shape

    def chunk(r0: int, r1: int) -> np.ndarray:
        part = t.data[r0:r1]
        return (bf16_to_f32(part) if t.dtype == "BF16" else np.asarray(part, dtype=np.float32)).astype(
            np.float64
        )

    total = sum(float(np.abs(chunk(r0, r1)).sum()) for r0, r1 in row_chunks(rows, cols))
    scale = max(total / (rows * cols), 1e-5)
    packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
    for r0, r1 in row_chunks(rows, cols):
        w = np.clip(np.rint(chunk(r0, r1) / scale), -1, 1)
        packed[r0:r1] = pack_codes((w + 1).astype(np.uint8))
    return TernaryMatrix(t.name, rows, cols, packed, scale)


def load_hf(folder: str | Path, *, tokenizer: bool = True, lazy: bool = False) -> BitNetModel:
    """Load an HF BitNetForCausalLM directory into the vtpu layout (tokenizer.json required when asked).
    ``lazy``: names, dtypes, shapes and scales are checked now, the packed weights are converted on
    first use (``SourceTernary``; never when the converted layout is cached, one at a time and unkept
    when the cache is written). Each conversion releases the source pages it read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a model directory")
    cfg_path = folder / "config.json"
    raw_cfg = read_json(cfg_path)
    cfg = ModelConfig.from_hf_dict(raw_cfg, str(cfg_path))
    mode = scale_mode(raw_cfg, str(cfg_path))
    tensors = _read_all_shards(folder)
    notes = [f"weight_scale applied by {mode}"]
    if not cfg.tied_embeddings and "lm_head.weight" not in tensors and "tie_word_embeddings" not in raw_cfg:
        # transformers' BitNetConfig default is untied, but a checkpoint without lm_head can only be tied.
        cfg = dataclasses.replace(cfg, tied_embeddings=True)
        notes.append("no lm_head.weight: embeddings tied")

    def get(name: str) -> STTensor:
        if name not in tensors:
            raise ModelError(f"{folder}: missing tensor {name}")
        return tensors[name]

    def ternary(prefix: str, rows: int, cols: int) -> TernaryMatrix:
        w = get(prefix + ".weight")
        src = str(w.file)
        if mode == "online":
            expect_shape(src, w.name, w.shape, (rows, cols))

            def convert() -> TernaryMatrix:
                return _absmean_ternarize(w, src)
        else:
            if w.dtype != "U8":
                raise ModelError(
                    f"{src}: tensor {w.name} has dtype {w.dtype}; offline BitNet weights are packed U8"
                )
            expect_shape(src, w.name, w.shape, (rows // 4, cols))
            s = get(prefix + ".weight_scale")
            if s.data.size != 1:
                raise ModelError(f"{s.file}: tensor {s.name} must hold one value, has shape {s.shape}")
            value = float(s.as_float32().reshape(-1)[0])
            if not np.isfinite(value) or value <= 0:
                raise ModelError(f"{s.file}: tensor {s.name} holds an invalid scale {value}")
            scale = value if mode == "multiply" else 1.0 / value

            def convert() -> TernaryMatrix:
                return hf_decode(w.data, scale, w.name, src)

        def convert_and_release() -> TernaryMatrix:
            try:
                return convert()
            finally:
                release_file(w.data)  # the source bytes are done with: out of our resident set

        return SourceTernary(w.name, rows, cols, convert_and_release) if lazy else convert_and_release()

    def norm(name: str, size: int) -> np.ndarray:
        t = get(name)
        expect_shape(str(t.file), name, t.shape, (size,))
        return t.as_float32().copy()

    def dense(name: str, rows: int, cols: int) -> DenseTensor:
        t = get(name)
        expect_shape(str(t.file), name, t.shape, (rows, cols))
        if t.dtype not in _ST_KIND:
            raise ModelError(f"{t.file}: tensor {name} has dtype {t.dtype}, expected F32/F16/BF16")
        return DenseTensor(name, rows, cols, _ST_KIND[t.dtype], t.data)

    shapes = layer_shapes(cfg)
    sizes = norm_sizes(cfg)
    layers = []
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        tern = {role: ternary(p + _ROLE_NAMES[role], *shapes[role]) for role in shapes}
        norms = {role: norm(p + _NORM_NAMES[role] + ".weight", sizes[role]) for role in sizes}
        layers.append(LayerWeights(**norms, **tern))
    embedding = dense("model.embed_tokens.weight", cfg.vocab, cfg.hidden)
    lm_head = embedding if cfg.tied_embeddings else dense("lm_head.weight", cfg.vocab, cfg.hidden)
    model = BitNetModel(
        config=cfg,
        embedding=embedding,
        layers=layers,
        output_norm=norm("model.norm.weight", cfg.hidden),
        lm_head=lm_head,
        source=folder,
        fmt="hf",
        notes=notes,
    )
    if tokenizer:
        from vtpu_cli.models.tokenizer import load_hf_tokenizer

        model.tokenizer = load_hf_tokenizer(folder, cfg)
    for t in {t.file: t for t in tensors.values()}.values():
        release_file(t.data)  # norms and scales are copied: no page of any shard stays resident
    return model
