"""One entry point: a directory is a Hugging Face checkpoint, a `.gguf` file is GGUF (TQ* or I2_S)."""

from __future__ import annotations

from pathlib import Path

from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.load_gguf import load_gguf
from vtpu_cli.models.load_hf import load_hf
from vtpu_cli.models.weights import BitNetModel


def load_model(path: str | Path, *, tokenizer: bool = True, lazy: bool = False) -> BitNetModel:
    """Load any supported BitNet checkpoint into the vtpu layout; bad input raises ModelError.
    ``lazy``: ternary tensors are converted on first use -- for callers that take the converted layout
    from the cache (``cache.cached_weights``: nothing converted on a hit, one matrix at a time on a
    miss), where a defect in a tensor's bits surfaces at conversion instead."""
    path = Path(path)
    if path.is_dir():
        return load_hf(path, tokenizer=tokenizer, lazy=lazy)
    if path.is_file():
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"GGUF" or path.suffix.lower() == ".gguf":
            return load_gguf(path, tokenizer=tokenizer, lazy=lazy)
        raise ModelError(f"{path}: not a model directory or a GGUF file")
    raise ModelError(f"{path}: no such file or directory")
