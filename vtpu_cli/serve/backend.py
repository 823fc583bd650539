"""The generation-engine interface the server drives, and the chat prompt rendering it needs.

The scheduler (`engine.py`) sees a model only through `Backend`: text <-> ids, a fresh per-sequence KV
state, and one `forward` that appends tokens to several sequences in a single pass (prompt chunks and
single decode tokens together) and returns each one's next-token logits. Keeping the interface this
small lets the compiled (JIT) model path replace the numpy reference later without touching the server.

Contract every backend keeps, because the server's correctness rests on it:
* `forward` is batch-invariant up to floating-point rounding: a sequence's logits do not depend on which
  other sequences share the pass (so a request's greedy answer is the same under load as alone);
* states are independent: releasing one never affects another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """A causal language model the server can schedule (see the module docstring for the contract)."""

    model_id: str
    """Name clients pass as `model`."""
    ctx: int
    """Positions one sequence may hold (prompt + generated)."""
    eos_ids: frozenset[int]
    """Tokens that end a generation (finish_reason "stop")."""
    vocab_size: int
    """Valid token ids are 0 .. vocab_size - 1."""

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with BOS when the model wants one."""
        ...

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Prompt ids for chat `messages` ([{role, content}]), ending where the assistant answers.

        Raises ChatTemplateError when the model's template rejects the conversation.
        """
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids (special tokens skipped)."""
        ...

    def new_state(self) -> Any:
        """A fresh, empty KV state for one sequence."""
        ...

    def forward(self, states: Sequence[Any], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """Append `tokens[i]` (a prompt chunk, or one generated token) to `states[i]` for every i in one
        pass; the next-token logits after each sequence's last new token, float [len(states), vocab]."""
        ...

    def score(self, state: Any, tokens: Sequence[int]) -> np.ndarray:
        """Append ``tokens`` to ``state`` alone; the next-token logits after *each* of them, float
        [len(tokens), vocab] (prompt log probabilities: the last row is what ``forward`` returns)."""
        ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for (a piece of a multi-byte character is its own bytes)."""
        ...

    def release(self, state: Any) -> None:
        """Free the memory of a state that will not be used again."""
        ...

    def state_bytes(self) -> int:
        """Bytes one sequence's state occupies at full context (the `--max-concurrent` memory unit)."""
        ...


def render_simple_chat(messages: Sequence[Mapping[str, str]]) -> str:
    """The chat format for models without a template: plain "Role: text" turns, as BitNet b1.58 2B-4T was
    tuned on, needing no special tokens so that any vocabulary can encode it (docs/serve.md shows it)."""
    parts = []
    for m in messages:
        role = {"system": "System", "developer": "System", "assistant": "Assistant"}.get(m["role"], "User")
        parts.append(f"{role}: {m['content']}\n\n")
    parts.append("Assistant:")
    return "".join(parts)


def render_template(
    template: str, messages: Sequence[Mapping[str, str]], *, bos_token: str = "", eos_token: str = ""
) -> str:
    """Render a Hugging Face-style Jinja chat template in a sandbox (templates come with model files).

    The template gets the variables transformers passes: messages, add_generation_prompt, bos_token,
    eos_token, and `raise_exception` for templates that reject a conversation.
    """
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ChatTemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        compiled = env.from_string(template)
        return compiled.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            raise_exception=raise_exception,
        )
    except ChatTemplateError:
        raise
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from None


class ChatTemplateError(ValueError):
    """The conversation cannot be rendered with the model's chat template (a client error)."""
