"""Tokenizers for BitNet models, all as `tokenizers.Tokenizer` objects behind one small wrapper.

* HF directories: `tokenizer.json` (required) plus `tokenizer_config.json` for the chat template and BOS.
* GGUF: the embedded vocabulary (`tokenizer.ggml.*`) is rebuilt as a `tokenizers` pipeline:
  `gpt2` (byte-level BPE with merges) becomes a BPE model with the byte-level pre-tokenizer of its
  `tokenizer.ggml.pre` type (GPT-2 or Llama-3 split pattern); `llama` (SentencePiece) becomes a Unigram
  model over the same pieces and scores with byte fallback and the "▁" space convention, the closest
  equivalent `tokenizers` offers (segmentations can differ from SentencePiece-BPE on rare strings).
BOS is added by the wrapper, not by a post-processor, so every source behaves alike.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vtpu_cli.models.config import ModelConfig, read_json
from vtpu_cli.models.errors import ModelError

# Token types of GGUF vocabularies.
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_UNUSED, TT_BYTE = 1, 2, 3, 4, 5, 6

# The Llama-3 pre-tokenizer split pattern (llama.cpp pre type `llama-bpe`).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2_PRE = ("gpt-2", "default", "gpt2")
_LLAMA3_PRE = ("llama-bpe", "llama3", "llama-v3", "smaug-bpe")


class Tokenizer:
    """Text <-> token ids for one model; `hf` is the underlying `tokenizers.Tokenizer`."""

    def __init__(
        self,
        hf: Any,
        *,
        bos_id: int | None,
        eos_id: int | None,
        add_bos: bool,
        chat_template: str | None,
        source: str,
        notes: Sequence[str] = (),
    ) -> None:
        self.hf = hf
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.add_bos = add_bos and bos_id is not None
        self.chat_template = chat_template
        self.source = source
        self.notes = list(notes)
        self._bl: bool | None = None  # byte-level decoder (token_bytes), found on first use

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of `text`; special-token strings in the text are recognised; BOS per `add_bos`."""
        ids = list(self.hf.encode(text, add_special_tokens=False).ids)
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids.insert(0, self.bos_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=skip_special))

    def token(self, i: int) -> str | None:
        return self.hf.id_to_token(i)

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for (a piece of a multi-byte character is just its bytes): with a
        byte-level decoder the token's characters mapped back through the byte alphabet; otherwise a
        ``<0xNN>`` byte token is its byte and a piece's text has ``\u2581`` as a space."""
        piece = self.hf.id_to_token(i)
        if piece is None:
            return b""
        if self._byte_level():
            table = _byte_alphabet()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
            return piece.encode()  # an added token outside the alphabet
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece.replace("\u2581", " ").encode()

    def _byte_level(self) -> bool:
        """Whether the decoder maps characters back to bytes (ByteLevel, alone or in a Sequence)."""
        got = self._bl
        if got is None:
            dec = self.hf.decoder
            got = self._bl = dec is not None and b'"type":"ByteLevel"' in dec.__getstate__()
        return got


@functools.cache
def _byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's alphabet, character -> byte: printable Latin-1 bytes stand for themselves, the
    other 68 bytes (controls, space, DEL, NBSP, soft hyphen, ...) for U+0100 onwards in byte order."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in keep}
    others = [b for b in range(256) if b not in set(keep)]
    table.update({chr(0x100 + n): b for n, b in enumerate(others)})
    return table


# ------------------------------------------------------------------ Hugging Face


def load_hf_tokenizer(folder: str | Path, cfg: ModelConfig | None = None) -> Tokenizer:
    """`tokenizer.json` (required) and `tokenizer_config.json` (optional) of an HF model directory."""
    from tokenizers import Tokenizer as HFTokenizer

    folder = Path(folder)
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{path}: tokenizer file not found (the model directory needs a tokenizer.json)")
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise ModelError(f"{path}: cannot load tokenizer: {exc}") from None
    tc_path = folder / "tokenizer_config.json"
    tc = read_json(tc_path) if tc_path.is_file() else {}

    def special_id(key: str, fallback: int | None) -> int | None:
        tok = tc.get(key)
        if isinstance(tok, dict):
            tok = tok.get("content")
        found = hf.token_to_id(tok) if isinstance(tok, str) else None
        return found if found is not None else fallback

    bos = special_id("bos_token", cfg.bos_id if cfg else None)
    eos = special_id("eos_token", cfg.eos_id if cfg else None)
    if "add_bos_token" in tc:
        add_bos = bool(tc["add_bos_token"])
    else:  # the tokenizer.json post-processor decides, as transformers would
        add_bos = bos is not None and bos in hf.encode("", add_special_tokens=True).ids
    template = tc.get("chat_template")
    if isinstance(template, list):  # several named templates: take "default"
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return Tokenizer(hf, bos_id=bos, eos_id=eos, add_bos=add_bos, chat_template=template, source=str(path))


# ------------------------------------------------------------------ GGUF


def tokenizer_from_gguf(meta: Mapping[str, Any], source: str) -> Tokenizer:
    """Rebuild the vocabulary embedded in GGUF metadata as a `tokenizers` tokenizer."""
    kind = meta.get("tokenizer.ggml.model")
    tokens = meta.get("tokenizer.ggml.tokens")
    if kind is None or tokens is None:
        raise ModelError(
            f"{source}: no embedded tokenizer (tokenizer.ggml.model / tokenizer.ggml.tokens missing)"
        )
    types = list(meta.get("tokenizer.ggml.token_type") or [TT_NORMAL] * len(tokens))
    if len(types) != len(tokens):
        raise ModelError(
            f"{source}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens"
        )
    notes: list[str] = []
    if kind == "gpt2":
        hf = _bpe_from_gguf(meta, tokens, source, notes)
    elif kind == "llama":
        hf = _unigram_from_gguf(meta, tokens, types, source)
    else:
        raise ModelError(
            f"{source}: tokenizer.ggml.model {kind!r} is not supported (expected 'gpt2' or 'llama')"
        )
    _add_special(hf, tokens, types)
    bos = meta.get("tokenizer.ggml.bos_token_id")
    eos = meta.get("tokenizer.ggml.eos_token_id")
    for key, value in (("bos", bos), ("eos", eos)):
        if value is not None and not 0 <= int(value) < len(tokens):
            raise ModelError(f"{source}: tokenizer.ggml.{key}_token_id {value} is outside the vocabulary")
    return Tokenizer(
        hf,
        bos_id=None if bos is None else int(bos),
        eos_id=None if eos is None else int(eos),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)),
        chat_template=meta.get("tokenizer.chat_template"),
        source=source,
        notes=notes,
    )


def _vocab(tokens: Sequence[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    return vocab


def _bpe_from_gguf(meta: Mapping[str, Any], tokens: Sequence[str], source: str, notes: list[str]) -> Any:
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    merges_raw = meta.get("tokenizer.ggml.merges")
    if merges_raw is None:
        raise ModelError(f"{source}: BPE vocabulary without tokenizer.ggml.merges")
    merges = []
    for m in merges_raw:
        parts = m.split(" ")
        if len(parts) != 2:
            raise ModelError(f"{source}: tokenizer.ggml.merges entry {m!r} is not 'left right'")
        merges.append((parts[0], parts[1]))
    pre = meta.get("tokenizer.ggml.pre", "default")
    llama3 = pre in _LLAMA3_PRE
    if not llama3 and pre not in _GPT2_PRE:
        notes.append(f"pre-tokenizer {pre!r} unknown: using the GPT-2 split pattern")
    hf = HFTokenizer(models.BPE(vocab=_vocab(tokens), merges=merges, ignore_merges=llama3, fuse_unk=False))
    if llama3:
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    return hf


def _unigram_from_gguf(
    meta: Mapping[str, Any], tokens: Sequence[str], types: Sequence[int], source: str
) -> Any:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers

    scores = list(meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens))
    if len(scores) != len(tokens):
        raise ModelError(
            f"{source}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens"
        )
    normal = [s for s, t in zip(scores, types, strict=True) if t == TT_NORMAL]
    floor = (min(normal) if normal else 0.0) - 100.0
    # Byte, control and unused pieces never win a segmentation; they are fallbacks and specials.
    vocab = [
        (tok, float(s) if t == TT_NORMAL else floor) for tok, s, t in zip(tokens, scores, types, strict=True)
    ]
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    if unk is None:
        unk = next((i for i, t in enumerate(types) if t == TT_UNKNOWN), None)
    has_bytes = any(t == TT_BYTE for t in types)
    hf = HFTokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=has_bytes))
    steps = [normalizers.Replace(" ", "\u2581")]
    if meta.get("tokenizer.ggml.add_space_prefix", True):
        steps.insert(0, normalizers.Prepend("\u2581"))
    hf.normalizer = normalizers.Sequence(steps)
    dec = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if meta.get("tokenizer.ggml.add_space_prefix", True):
        dec.append(decoders.Strip(" ", 1, 0))
    hf.decoder = decoders.Sequence(dec)
    return hf


def _add_special(hf: Any, tokens: Sequence[str], types: Sequence[int]) -> None:
    from tokenizers import AddedToken

    special = [
        AddedToken(tok, special=True, normalized=False)
        for tok, t in zip(tokens, types, strict=True)
        if t in (TT_CONTROL, TT_USER_DEFINED) and tok
    ]
    if special:
        hf.add_special_tokens(special)


def gguf_vocab_from_tokenizer_json(path: str | Path) -> dict[str, Any]:
    """The `tokenizer.ggml.*` entries describing a byte-level BPE `tokenizer.json` (for writing GGUFs)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ModelError(f"{path}: only BPE tokenizer.json files can be embedded in GGUF here")
    vocab: dict[str, int] = dict(model["vocab"])
    special = {}
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special[added["id"]] = added["content"]
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for tok, i in vocab.items():
        tokens[i] = tok
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    types = [TT_CONTROL if i in special else TT_NORMAL for i in range(n)]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
    }
