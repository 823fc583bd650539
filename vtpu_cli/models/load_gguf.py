"""GGUF BitNet models (llama.cpp `bitnet` with TQ1_0/TQ2_0, bitnet.cpp I2_S) into the vtpu layout.

Tensor names follow llama.cpp: `token_embd`, `output_norm`, `output` (absent when tied), and per block
`blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_sub_norm, ffn_norm, ffn_gate, ffn_up,
ffn_down, ffn_sub_norm}.weight`. An optional `blk.N.<proj>.scale` tensor (llama.cpp's BitNet graph
multiplies the matmul result by it) is folded into the vtpu scale. Q and K are stored in HF order:
llama.cpp runs this architecture with NEOX (rotate-half) RoPE, so no row permutation is undone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtpu_cli.models.config import ModelConfig
from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.formats import QK_TQ, i2_s_decode, tq1_0_decode, tq2_0_decode
from vtpu_cli.models.gguf_file import (
    BF16,
    F16,
    F32,
    I2_S,
    Q8_0,
    TQ1_0,
    TQ2_0,
    GGUFFile,
    GGUFTensor,
    read_gguf,
    type_name,
)
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
    ternarize_dense,
)

_ROLE_NAMES = {
    "wq": "attn_q",
    "wk": "attn_k",
    "wv": "attn_v",
    "wo": "attn_output",
    "w_gate": "ffn_gate",
    "w_up": "ffn_up",
    "w_down": "ffn_down",
}
_FLOAT_NP = {F32: np.float32, F16: np.float16, BF16: np.uint16}


def _float_view(t: GGUFTensor, shape: tuple[int, ...]) -> np.ndarray:
    return t.data.view(_FLOAT_NP[t.type_id]).reshape(shape)


def _ternary(f: GGUFFile, t: GGUFTensor, rows: int, cols: int) -> TernaryMatrix:
    src = str(f.path)
    expect_shape(src, t.name, t.shape, (rows, cols))
    if t.type_id in (TQ1_0, TQ2_0):
        if cols % QK_TQ:
            raise ModelError(f"{src}: tensor {t.name}: row length {cols} is not a multiple of {QK_TQ}")
        data = t.data.reshape(rows, -1)
        decode = tq1_0_decode if t.type_id == TQ1_0 else tq2_0_decode
        return decode(data, cols, t.name, src)
    if t.type_id == I2_S:
        return i2_s_decode(t.data, rows, cols, t.name, src)
    if t.type_id in _FLOAT_NP:
        values = _float_view(t, (rows, cols))
        packed = np.empty((rows, packed_cols(cols)), dtype=np.uint8)
        scales = set()
        for r0, r1 in row_chunks(rows, cols):
            part = bf16_to_f32(values[r0:r1]) if t.type_id == BF16 else values[r0:r1]
            codes, s = ternarize_dense(part, t.name, src)
            packed[r0:r1] = pack_codes(codes)
            scales.add(s)
        scales.discard(0.0)
        if len(scales) > 1:
            raise ModelError(f"{src}: tensor {t.name} is a float tensor with more than one ternary scale")
        return TernaryMatrix(t.name, rows, cols, packed, scales.pop() if scales else 0.0)
    raise ModelError(
        f"{src}: tensor {t.name} has type {type_name(t.type_id)}; ternary weights must be TQ1_0, TQ2_0 or I2_S"
    )


def _dense(f: GGUFFile, t: GGUFTensor, rows: int, cols: int) -> DenseTensor:
    expect_shape(str(f.path), t.name, t.shape, (rows, cols))
    if t.type_id in _FLOAT_NP:
        kind = {F32: "f32", F16: "f16", BF16: "bf16"}[t.type_id]
        return DenseTensor(t.name, rows, cols, kind, _float_view(t, (rows, cols)))
    if t.type_id == Q8_0:
        return DenseTensor(t.name, rows, cols, "q8_0", t.data.reshape(rows, -1))
    raise ModelError(
        f"{f.path}: tensor {t.name} has type {type_name(t.type_id)}; expected F32, F16, BF16 or Q8_0"
    )


def _norm(f: GGUFFile, t: GGUFTensor, size: int) -> np.ndarray:
    expect_shape(str(f.path), t.name, t.shape, (size,))
    if t.type_id not in _FLOAT_NP:
        raise ModelError(
            f"{f.path}: tensor {t.name} has type {type_name(t.type_id)}; norms must be F32/F16/BF16"
        )
    v = _float_view(t, (size,))
    return (bf16_to_f32(v) if t.type_id == BF16 else np.asarray(v, dtype=np.float32)).copy()


def _extra_scale(f: GGUFFile, name: str) -> float:
    t = f.tensors.get(name)
    if t is None:
        return 1.0
    if t.type_id not in (F32, F16) or t.n_elements != 1:
        raise ModelError(f"{f.path}: tensor {name} must be one F32/F16 value")
    return float(_float_view(t, (1,))[0])


def load_gguf(path: str | Path, *, tokenizer: bool = True, lazy: bool = False) -> BitNetModel:
    """Load a BitNet GGUF (TQ1_0, TQ2_0 or I2_S ternary tensors) into the vtpu layout. ``lazy``: the
    ternary tensors are converted on first use (``SourceTernary``), e.g. never when the converted layout
    is cached, and one at a time, unkept, when the cache is written (``cache.cached_weights``). Each
    conversion releases the source pages it read, so resident memory holds the converted bytes only."""
    f = read_gguf(path)
    src = str(f.path)

    def get(name: str) -> GGUFTensor:
        if name not in f.tensors:
            raise ModelError(f"{src}: missing tensor {name}")
        return f.tensors[name]

    embd = get("token_embd.weight")
    tied = "output.weight" not in f.tensors
    vocab_hint = embd.shape[0] if len(embd.shape) == 2 else None
    cfg = ModelConfig.from_gguf_metadata(f.meta, src, tied=tied, vocab_hint=vocab_hint)
    shapes = layer_shapes(cfg)
    sizes = norm_sizes(cfg)
    layers = []
    for i in range(cfg.layers):
        tern = {}
        for role, base in _ROLE_NAMES.items():
            t = get(f"blk.{i}.{base}.weight")
            extra = _extra_scale(f, f"blk.{i}.{base}.scale")

            def convert(t=t, shape=shapes[role], extra=extra) -> TernaryMatrix:
                try:
                    m = _ternary(f, t, *shape)
                finally:
                    release_file(t.data)  # the source bytes are done with: out of our resident set
                if extra != 1.0:
                    m = TernaryMatrix(m.name, m.rows, m.cols, m.packed, m.scale * extra)
                return m

            tern[role] = SourceTernary(t.name, *shapes[role], convert) if lazy else convert()
        norms = {role: _norm(f, get(f"blk.{i}.{role}.weight"), size) for role, size in sizes.items()}
        layers.append(LayerWeights(**norms, **tern))
    embedding = _dense(f, embd, cfg.vocab, cfg.hidden)
    lm_head = embedding if tied else _dense(f, get("output.weight"), cfg.vocab, cfg.hidden)
    kinds = sorted(
        {
            type_name(get(f"blk.{i}.{b}.weight").type_id)
            for i in range(cfg.layers)
            for b in _ROLE_NAMES.values()
        }
    )
    model = BitNetModel(
        config=cfg,
        embedding=embedding,
        layers=layers,
        output_norm=_norm(f, get("output_norm.weight"), cfg.hidden),
        lm_head=lm_head,
        source=f.path,
        fmt="gguf-" + "+".join(kinds).lower(),
        notes=[f"parsed by the {f.reader} reader"],
    )
    if tokenizer:
        from vtpu_cli.models.tokenizer import tokenizer_from_gguf

        model.tokenizer = tokenizer_from_gguf(f.meta, src)
    # header, vocabulary and norms are parsed into objects: their pages (the whole header region, ~13 MiB
    # at a 128256-token vocabulary) leave the resident set
    release_file(embd.data)
    return model
