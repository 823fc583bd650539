"""Tiny random BitNet b1.58 models written in every supported format from the same ternary weights.

Values are chosen so that every format stores them exactly: scales are k/256 (at most 8 significant
bits, exact in bf16, fp16 and fp32), embeddings k/64 and norm weights 1 + k/64. Loading any of the files
must therefore give bit-identical vtpu weights and reference logits, which is what the tests check.
The tokenizer is a byte-level BPE trained on a fixed built-in text, so it is the same on every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from vtpu_cli.models.formats import hf_pack, i2_s_encode, q8_0_encode, tq1_0_encode, tq2_0_encode
from vtpu_cli.models.gguf_file import F16, F32, I2_S, V_ARR, V_BOOL, V_F32, V_I32, V_STR, V_U32, write_gguf
from vtpu_cli.models.tokenizer import gguf_vocab_from_tokenizer_json

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
CORPUS = """\
The virtual tensor processor runs ternary weights through three pipes: dense compute, memory and
communication. A BitNet model keeps every linear weight in minus one, zero or plus one, with one scale
per tensor, and quantises activations to eight bits per token. The quick brown fox jumps over the lazy
dog; the lazy dog sleeps in the sun while the fox runs through the forest and over the hills.
Numbers such as 12, 256, 4096 and 2560 appear in shapes; words like attention, norm, rope and cache
appear in code. Hello world! Hello again, world. This is a test of the tokenizer and the model.
"""
HF_ROLES = {
    "wq": "self_attn.q_proj",
    "wk": "self_attn.k_proj",
    "wv": "self_attn.v_proj",
    "wo": "self_attn.o_proj",
    "w_gate": "mlp.gate_proj",
    "w_up": "mlp.up_proj",
    "w_down": "mlp.down_proj",
}
GGUF_ROLES = {
    "wq": "attn_q",
    "wk": "attn_k",
    "wv": "attn_v",
    "wo": "attn_output",
    "w_gate": "ffn_gate",
    "w_up": "ffn_up",
    "w_down": "ffn_down",
}
HF_NORMS = {
    "attn_norm": "input_layernorm",
    "attn_sub_norm": "self_attn.attn_sub_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_sub_norm": "mlp.ffn_sub_norm",
}


class ModelShape(Protocol):
    """What the metadata writers read of a model spec (SynthSpec here, LargeSpec in synth_large)."""

    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    rope_theta: float
    rms_eps: float
    max_ctx: int


@dataclass(frozen=True)
class SynthSpec:
    """Shape of a synthetic model. TQ1_0/TQ2_0 need hidden and ffn to be multiples of 256."""

    hidden: int = 256
    ffn: int = 512
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 300
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    max_ctx: int = 256
    seed: int = 1234


@dataclass
class SynthWeights:
    """The source of truth: ternary int8 matrices [out, in], scales, float norms and embedding."""

    spec: SynthSpec
    vocab: int
    ternary: list[dict[str, np.ndarray]] = field(default_factory=list)
    scales: list[dict[str, float]] = field(default_factory=list)
    norms: list[dict[str, np.ndarray]] = field(default_factory=list)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    output_norm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


def train_tokenizer(vocab: int) -> object:
    """A byte-level BPE `tokenizers.Tokenizer` with BOS/EOS specials, trained on the built-in corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    return tok


def random_weights(spec: SynthSpec, vocab: int) -> SynthWeights:
    """Seeded random ternary weights (about 1/3 zeros) and exactly representable floats."""
    rng = np.random.default_rng(spec.seed)
    head_dim = spec.hidden // spec.heads
    shapes = {
        "wq": (spec.heads * head_dim, spec.hidden),
        "wk": (spec.kv_heads * head_dim, spec.hidden),
        "wv": (spec.kv_heads * head_dim, spec.hidden),
        "wo": (spec.hidden, spec.heads * head_dim),
        "w_gate": (spec.ffn, spec.hidden),
        "w_up": (spec.ffn, spec.hidden),
        "w_down": (spec.hidden, spec.ffn),
    }
    sizes = {
        "attn_norm": spec.hidden,
        "attn_sub_norm": spec.hidden,
        "ffn_norm": spec.hidden,
        "ffn_sub_norm": spec.ffn,
    }
    w = SynthWeights(spec, vocab)
    for _ in range(spec.layers):
        w.ternary.append({r: rng.integers(-1, 2, size=s).astype(np.int8) for r, s in shapes.items()})
        # Block outputs a few times the embedding size keep greedy decoding from echoing the last token;
        # k/256 is exact in every float format.
        w.scales.append({r: float(rng.integers(48, 112)) / 256 for r in shapes})
        w.norms.append(
            {n: (1 + rng.integers(-16, 17, size=s) / 64).astype(np.float32) for n, s in sizes.items()}
        )
    w.embedding = (rng.integers(-48, 49, size=(vocab, spec.hidden)) / 64).astype(np.float32)
    w.output_norm = (1 + rng.integers(-16, 17, size=spec.hidden) / 64).astype(np.float32)
    return w


def _f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns; exact for our values, so truncation is enough."""
    return (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


_ST_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1}


def save_safetensors_streamed(
    path: Path, entries: list[tuple[str, str, tuple[int, ...], Callable[[], np.ndarray]]]
) -> None:
    """Write a safetensors file whose tensors are produced one at a time: entries are (name, dtype tag,
    shape, function returning the array of raw element bits). The header goes first (sizes follow from
    the shapes), so memory stays at one tensor whatever the file size."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, _ in entries:
        n = int(np.prod(shape, dtype=np.int64)) * _ST_ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(len(head).to_bytes(8, "little") + head)
        for name, dtype, shape, make in entries:
            arr = np.ascontiguousarray(make())
            if arr.shape != tuple(shape) or arr.itemsize != _ST_ITEMSIZE[dtype]:
                raise ValueError(f"tensor {name}: produced {arr.dtype}{arr.shape}, announced {dtype}{shape}")
            fh.write(memoryview(arr).cast("B"))


def _save_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """Write a safetensors file; entries are name -> (dtype tag, array holding the raw element bits)."""
    entries = [(n, d, a.shape, lambda a=a: a) for n, (d, a) in tensors.items()]
    save_safetensors_streamed(path, entries)


def write_hf(
    folder: str | Path,
    w: SynthWeights,
    tokenizer: object,
    scale_mode: str = "multiply",
    lm_head: np.ndarray | None = None,
) -> Path:
    """An HF BitNetForCausalLM directory: config.json, model.safetensors, tokenizer files.

    `scale_mode` "multiply" writes autobitlinear/offline (weight_scale = scale, bf16); "divide" writes
    the bitlinear class (weight_scale = 1/scale, float32). An `lm_head` [vocab, hidden] unties the head.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = w.spec
    tensors: dict[str, tuple[str, np.ndarray]] = {
        "model.embed_tokens.weight": ("BF16", _f32_to_bf16_bits(w.embedding)),
        "model.norm.weight": ("BF16", _f32_to_bf16_bits(w.output_norm)),
    }
    if lm_head is not None:
        tensors["lm_head.weight"] = ("BF16", _f32_to_bf16_bits(lm_head))
    for i in range(s.layers):
        p = f"model.layers.{i}."
        for role, name in HF_ROLES.items():
            tensors[p + name + ".weight"] = ("U8", hf_pack(w.ternary[i][role]))
            if scale_mode == "multiply":
                tensors[p + name + ".weight_scale"] = (
                    "BF16",
                    _f32_to_bf16_bits(np.array([w.scales[i][role]])),
                )
            else:
                tensors[p + name + ".weight_scale"] = (
                    "F32",
                    np.array([1.0 / w.scales[i][role]], dtype=np.float32),
                )
        for role, name in HF_NORMS.items():
            tensors[p + name + ".weight"] = ("BF16", _f32_to_bf16_bits(w.norms[i][role]))
    _save_safetensors(folder / "model.safetensors", tensors)
    tok_id = tokenizer.token_to_id  # type: ignore[attr-defined]
    config = hf_config(s, w.vocab, tok_id(BOS), tok_id(EOS), tied=lm_head is None, scale_mode=scale_mode)
    write_hf_side_files(folder, config, tokenizer)
    return folder


def hf_config(s: ModelShape, vocab: int, bos: int, eos: int, *, tied: bool, scale_mode: str) -> dict:
    """The `config.json` of a synthetic BitNetForCausalLM ("multiply": autobitlinear/offline, "divide":
    bitlinear)."""
    linear = "autobitlinear" if scale_mode == "multiply" else "bitlinear"
    return {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_act": "relu2",
        "hidden_size": s.hidden,
        "intermediate_size": s.ffn,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "vocab_size": vocab,
        "rope_theta": s.rope_theta,
        "rms_norm_eps": s.rms_eps,
        "max_position_embeddings": s.max_ctx,
        "tie_word_embeddings": tied,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": linear,
            "quantization_mode": "offline",
        },
    }


def write_hf_side_files(folder: Path, config: dict, tokenizer: object) -> None:
    """config.json, tokenizer.json and tokenizer_config.json (BOS/EOS, add_bos, the chat template)."""
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer.save(str(folder / "tokenizer.json"))  # type: ignore[attr-defined]
    tc = {"bos_token": BOS, "eos_token": EOS, "add_bos_token": True, "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n", encoding="utf-8")


def _vocab_meta(tokenizer_json: Path, tokenizer: object) -> dict[str, object]:
    meta = gguf_vocab_from_tokenizer_json(tokenizer_json)
    tok_id = tokenizer.token_to_id  # type: ignore[attr-defined]
    meta |= {
        "tokenizer.ggml.bos_token_id": tok_id(BOS),
        "tokenizer.ggml.eos_token_id": tok_id(EOS),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.chat_template": CHAT_TEMPLATE,
    }
    return meta


def write_gguf_header(wr, s, vocab: int, file_type, meta: dict, bos: int, eos: int) -> None:
    """The `bitnet` GGUF metadata both synthetic writers emit: shapes, RoPE, norms, the BPE vocabulary
    (``meta``'s ``tokenizer.ggml.*`` lists), BOS/EOS and the chat template."""
    wr.add_context_length(s.max_ctx)
    wr.add_embedding_length(s.hidden)
    wr.add_feed_forward_length(s.ffn)
    wr.add_block_count(s.layers)
    wr.add_head_count(s.heads)
    wr.add_head_count_kv(s.kv_heads)
    wr.add_rope_freq_base(s.rope_theta)
    wr.add_rope_dimension_count(s.hidden // s.heads)
    wr.add_layer_norm_rms_eps(s.rms_eps)
    wr.add_vocab_size(vocab)
    wr.add_file_type(file_type)
    wr.add_tokenizer_model(meta["tokenizer.ggml.model"])
    wr.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
    wr.add_token_list(meta["tokenizer.ggml.tokens"])
    wr.add_token_types(meta["tokenizer.ggml.token_type"])
    wr.add_token_merges(meta["tokenizer.ggml.merges"])
    wr.add_bos_token_id(bos)
    wr.add_eos_token_id(eos)
    wr.add_add_bos_token(True)
    wr.add_chat_template(CHAT_TEMPLATE)


def write_gguf_tq(
    path: str | Path,
    w: SynthWeights,
    tokenizer_json: Path,
    tokenizer: object,
    qtype: str = "TQ2_0",
    embed: str = "f16",
    lm_head: np.ndarray | None = None,
) -> Path:
    """A llama.cpp-style `bitnet` GGUF through gguf.GGUFWriter: TQ1_0 or TQ2_0 weights, f16/f32/q8_0
    embedding, and an f16 `output.weight` head when `lm_head` is given."""
    import gguf

    path = Path(path)
    s = w.spec
    qt = gguf.GGMLQuantizationType[qtype]
    encode = tq2_0_encode if qtype == "TQ2_0" else tq1_0_encode
    wr = gguf.GGUFWriter(path, "bitnet")
    meta = _vocab_meta(tokenizer_json, tokenizer)
    ftype = gguf.LlamaFileType.MOSTLY_TQ2_0 if qtype == "TQ2_0" else gguf.LlamaFileType.MOSTLY_TQ1_0
    write_gguf_header(
        wr, s, w.vocab, ftype, meta, meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]
    )
    if embed == "q8_0":
        wr.add_tensor("token_embd.weight", q8_0_encode(w.embedding), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        wr.add_tensor("token_embd.weight", w.embedding.astype(np.float16 if embed == "f16" else np.float32))
    wr.add_tensor("output_norm.weight", w.output_norm)
    if lm_head is not None:
        wr.add_tensor("output.weight", lm_head.astype(np.float16))
    for i in range(s.layers):
        for role, name in GGUF_ROLES.items():
            wr.add_tensor(
                f"blk.{i}.{name}.weight", encode(w.ternary[i][role], w.scales[i][role]), raw_dtype=qt
            )
        for role, arr in w.norms[i].items():
            wr.add_tensor(f"blk.{i}.{role}.weight", arr)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return path


def write_gguf_i2s(path: str | Path, w: SynthWeights, tokenizer_json: Path, tokenizer: object) -> Path:
    """A bitnet.cpp-style GGUF (architecture `bitnet-b1.58`) with I2_S weights, written by hand."""
    path = Path(path)
    s = w.spec
    meta = i2_s_meta(s, _vocab_meta(tokenizer_json, tokenizer))
    tensors = [
        ("token_embd.weight", (s.hidden, w.vocab), F16, w.embedding.astype(np.float16).tobytes()),
        ("output_norm.weight", (s.hidden,), F32, w.output_norm.tobytes()),
    ]
    for i in range(s.layers):
        for role, name in GGUF_ROLES.items():
            m = w.ternary[i][role]
            payload = i2_s_encode(m, w.scales[i][role])
            tensors.append((f"blk.{i}.{name}.weight", (m.shape[1], m.shape[0]), I2_S, payload))
        for role, arr in w.norms[i].items():
            tensors.append((f"blk.{i}.{role}.weight", arr.shape, F32, arr.tobytes()))
    write_gguf(path, meta, tensors)
    return path


def i2_s_meta(s: ModelShape, vocab: dict) -> list:
    """bitnet.cpp-style metadata (architecture `bitnet-b1.58`) for `write_gguf`; ``vocab`` holds the
    `tokenizer.ggml.*` keys (lists, BOS/EOS ids)."""
    arch = "bitnet-b1.58"
    return [
        ("general.architecture", V_STR, arch),
        ("general.alignment", V_U32, 32),
        (f"{arch}.context_length", V_U32, s.max_ctx),
        (f"{arch}.embedding_length", V_U32, s.hidden),
        (f"{arch}.feed_forward_length", V_U32, s.ffn),
        (f"{arch}.block_count", V_U32, s.layers),
        (f"{arch}.attention.head_count", V_U32, s.heads),
        (f"{arch}.attention.head_count_kv", V_U32, s.kv_heads),
        (f"{arch}.rope.freq_base", V_F32, s.rope_theta),
        (f"{arch}.rope.dimension_count", V_U32, s.hidden // s.heads),
        (f"{arch}.attention.layer_norm_rms_epsilon", V_F32, s.rms_eps),
        ("tokenizer.ggml.model", V_STR, vocab["tokenizer.ggml.model"]),
        ("tokenizer.ggml.pre", V_STR, vocab["tokenizer.ggml.pre"]),
        ("tokenizer.ggml.tokens", V_ARR, vocab["tokenizer.ggml.tokens"], V_STR),
        ("tokenizer.ggml.token_type", V_ARR, vocab["tokenizer.ggml.token_type"], V_I32),
        ("tokenizer.ggml.merges", V_ARR, vocab["tokenizer.ggml.merges"], V_STR),
        ("tokenizer.ggml.bos_token_id", V_U32, vocab["tokenizer.ggml.bos_token_id"]),
        ("tokenizer.ggml.eos_token_id", V_U32, vocab["tokenizer.ggml.eos_token_id"]),
        ("tokenizer.ggml.add_bos_token", V_BOOL, True),
        ("tokenizer.chat_template", V_STR, CHAT_TEMPLATE),
    ]


def write_all(out_dir: str | Path, spec: SynthSpec | None = None) -> dict[str, Path]:
    """Write the model in every format under `out_dir`; returns {format name: path}."""
    spec = spec or SynthSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(spec.vocab)
    vocab = tok.get_vocab_size()  # type: ignore[attr-defined]
    w = random_weights(spec, vocab)
    hf = write_hf(out / "hf", w, tok)
    tj = hf / "tokenizer.json"
    return {
        "hf": hf,
        "tq2_0": write_gguf_tq(out / "model-tq2_0.gguf", w, tj, tok, "TQ2_0"),
        "tq1_0": write_gguf_tq(out / "model-tq1_0.gguf", w, tj, tok, "TQ1_0"),
        "i2_s": write_gguf_i2s(out / "model-i2_s.gguf", w, tj, tok),
    }
