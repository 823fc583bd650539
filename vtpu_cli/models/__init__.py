"""BitNet b1.58 model formats and the float64 reference: load HF / GGUF (TQ1_0, TQ2_0, I2_S) checkpoints
into one vtpu ternary layout, tokenize, and run an independent reference forward pass.

Needs the optional `gguf` and `tokenizers` packages for GGUF files and tokenizers respectively.
"""

from __future__ import annotations

from vtpu_cli.models.config import ModelConfig
from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.loader import load_model
from vtpu_cli.models.reference import Reference, generate
from vtpu_cli.models.sampling import Sampler
from vtpu_cli.models.ternary import TernaryMatrix, pack_codes, pack_ternary, unpack_codes, unpack_ternary
from vtpu_cli.models.weights import BitNetModel, DenseTensor, LayerWeights

__all__ = [
    "BitNetModel",
    "DenseTensor",
    "LayerWeights",
    "ModelConfig",
    "ModelError",
    "Reference",
    "Sampler",
    "TernaryMatrix",
    "generate",
    "load_model",
    "pack_codes",
    "pack_ternary",
    "unpack_codes",
    "unpack_ternary",
]
