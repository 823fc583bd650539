"""Model hyperparameters of a BitNet b1.58 checkpoint, read from HF `config.json` or GGUF metadata.

Both sources are reduced to one `ModelConfig` so that loaders, the reference forward pass and the
compiled path agree on shapes without knowing where the model came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vtpu_cli.models.errors import ModelError

HF_ARCHITECTURES = ("BitNetForCausalLM", "BitnetForCausalLM")
# llama.cpp calls the architecture `bitnet`; bitnet.cpp's own GGUFs use these names for the same graph.
GGUF_ARCHITECTURES = ("bitnet", "bitnet-b1.58", "bitnet-25")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and constants of a BitNet b1.58 decoder (names follow the HF config where one exists)."""

    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tied_embeddings: bool = True
    max_ctx: int = 2048
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = field(default_factory=tuple)

    @property
    def eos_id(self) -> int | None:
        """The first end-of-sequence id (HF configs may list several)."""
        return self.eos_ids[0] if self.eos_ids else None

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def validate(self, source: str) -> ModelConfig:
        """Reject configurations the BitNet graph cannot run, naming `source`; returns self."""
        for name in ("hidden", "ffn", "layers", "heads", "kv_heads", "head_dim", "vocab", "max_ctx"):
            if getattr(self, name) <= 0:
                raise ModelError(f"{source}: {name} must be positive, got {getattr(self, name)}")
        if self.heads % self.kv_heads:
            raise ModelError(f"{source}: {self.heads} heads are not a multiple of {self.kv_heads} KV heads")
        if self.head_dim % 2:
            raise ModelError(f"{source}: head_dim {self.head_dim} must be even for RoPE")
        if self.q_dim != self.hidden:
            # attn_sub_norm is sized `hidden` and applied to the concatenated heads.
            raise ModelError(f"{source}: heads*head_dim = {self.q_dim} differs from hidden {self.hidden}")
        return self

    # ---------------------------------------------------------------- Hugging Face

    @classmethod
    def from_hf_dict(cls, cfg: Mapping[str, Any], source: str = "config.json") -> ModelConfig:
        """Build from a parsed HF `config.json` of architecture BitNetForCausalLM."""
        try:
            return cls._from_hf_dict(cfg, source)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{source}: bad value in config: {exc}") from None

    @classmethod
    def _from_hf_dict(cls, cfg: Mapping[str, Any], source: str) -> ModelConfig:
        archs = cfg.get("architectures") or []
        if not any(a in HF_ARCHITECTURES for a in archs):
            raise ModelError(f"{source}: architectures {archs} is not BitNetForCausalLM")
        act = cfg.get("hidden_act", "relu2")
        if act != "relu2":
            raise ModelError(f"{source}: hidden_act {act!r} is not supported (BitNet uses 'relu2')")
        rope = cfg.get("rope_scaling")
        if rope and not (
            rope.get("rope_type", rope.get("type")) in ("linear", "default")
            and rope.get("factor", 1.0) == 1.0
        ):
            raise ModelError(f"{source}: rope_scaling {rope} is not supported")

        def need(key: str) -> int:
            if key not in cfg:
                raise ModelError(f"{source}: missing key {key!r}")
            value = cfg[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ModelError(f"{source}: key {key!r} must be an integer, got {value!r}")
            return value

        hidden = need("hidden_size")
        heads = need("num_attention_heads")
        eos = cfg.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
        return cls(
            hidden=hidden,
            ffn=need("intermediate_size"),
            layers=need("num_hidden_layers"),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab=need("vocab_size"),
            rope_theta=float(cfg.get("rope_theta", 10000.0)),
            # HF adds eps to a float32 variance and GGUF stores it as float32: keep the float32 value.
            rms_eps=float(np.float32(cfg.get("rms_norm_eps", 1e-6))),
            tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            max_ctx=int(cfg.get("max_position_embeddings", 2048)),
            bos_id=cfg.get("bos_token_id"),
            eos_ids=eos_ids,
        ).validate(source)

    @classmethod
    def from_hf_file(cls, path: str | Path) -> ModelConfig:
        """Read and validate an HF `config.json`."""
        path = Path(path)
        return cls.from_hf_dict(read_json(path), str(path))

    # ---------------------------------------------------------------- GGUF

    @classmethod
    def from_gguf_metadata(
        cls, meta: Mapping[str, Any], source: str, *, tied: bool, vocab_hint: int | None = None
    ) -> ModelConfig:
        """Build from GGUF key/values (`{arch}.embedding_length`, `{arch}.attention.head_count_kv`, ...).

        `tied` says whether the file lacks an `output.weight` tensor; `vocab_hint` (the embedding's
        row count) is used when neither `{arch}.vocab_size` nor a token list is present.
        """
        try:
            return cls._from_gguf_metadata(meta, source, tied, vocab_hint)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: bad metadata value: {exc}") from None

    @classmethod
    def _from_gguf_metadata(
        cls, meta: Mapping[str, Any], source: str, tied: bool, vocab_hint: int | None
    ) -> ModelConfig:
        arch = meta.get("general.architecture")
        if arch not in GGUF_ARCHITECTURES:
            raise ModelError(f"{source}: general.architecture {arch!r} is not a BitNet architecture")

        def get(key: str, default: Any = None, *, required: bool = False) -> Any:
            full = f"{arch}.{key}"
            if full not in meta:
                if required:
                    raise ModelError(f"{source}: missing metadata key {full!r}")
                return default
            return meta[full]

        hidden = int(get("embedding_length", required=True))
        heads = int(get("attention.head_count", required=True))
        head_dim = int(get("attention.key_length", hidden // heads))
        rot = get("rope.dimension_count")
        if rot is not None and int(rot) != head_dim:
            raise ModelError(
                f"{source}: {arch}.rope.dimension_count {rot} != head dim {head_dim} (partial RoPE)"
            )
        # llama.cpp's bitnet graph computes SiLU for every file; BitNet b1.58 (and vtpu) use relu^2. A
        # file that states another activation is refused rather than silently run as relu^2.
        act = get("hidden_activation", "relu2")
        if act != "relu2":
            raise ModelError(
                f"{source}: {arch}.hidden_activation {act!r} is not supported (BitNet uses 'relu2')"
            )
        tokens = meta.get("tokenizer.ggml.tokens")
        vocab = get("vocab_size") or (len(tokens) if tokens is not None else vocab_hint)
        if not vocab:
            raise ModelError(f"{source}: cannot tell the vocabulary size ({arch}.vocab_size missing)")
        eos = meta.get("tokenizer.ggml.eos_token_id")
        bos = meta.get("tokenizer.ggml.bos_token_id")
        return cls(
            hidden=hidden,
            ffn=int(get("feed_forward_length", required=True)),
            layers=int(get("block_count", required=True)),
            heads=heads,
            kv_heads=int(get("attention.head_count_kv", heads)),
            head_dim=head_dim,
            vocab=int(vocab),
            rope_theta=float(get("rope.freq_base", 10000.0)),
            rms_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
            tied_embeddings=tied,
            max_ctx=int(get("context_length", 2048)),
            bos_id=None if bos is None else int(bos),
            eos_ids=() if eos is None else (int(eos),),
        ).validate(source)


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object file, turning every failure into a ModelError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data
