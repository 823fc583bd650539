"""`vtpu serve`: an OpenAI-compatible HTTP server for ternary (BitNet b1.58) models.

Install with the extra: `pip install 'vtpu[serve]'` (Starlette on uvicorn, Jinja2 for chat templates,
threadpoolctl). Modules: `backend` (the generation interface), `refbackend` (it, over the models
package's numpy reference), `engine` (continuous-batching scheduler), `protocol` (request validation),
`app` (routes), `server` (`serve_command`), `loadgen` (a load generator for measurements).

Command-line flags of `vtpu serve MODEL` (the CLI maps them onto `serve_command`'s arguments):

    MODEL                  a Hugging Face BitNet directory or a .gguf file (TQ1_0, TQ2_0, I2_S)
    --host HOST            address to bind (default 127.0.0.1: loopback only)
    --port N               TCP port (default 8080; 0 picks a free one and prints it)
    --sentrons N           compute threads for the model (default 1)
    --max-concurrent K     sequences decoded together; bounds KV-cache memory (default 4); more
                           requests wait in a FIFO queue
    --ctx N                context length per sequence (default: the model's)
"""

from __future__ import annotations

from vtpu_cli.serve.server import serve_command

__all__ = ["serve_command"]

FLAGS = (
    ("MODEL", "a Hugging Face BitNet directory or a .gguf file"),
    ("--host", "address to bind (default 127.0.0.1)"),
    ("--port", "TCP port (default 8080; 0 picks a free one)"),
    ("--sentrons", "compute threads for the model (default 1)"),
    ("--max-concurrent", "sequences decoded together; bounds KV-cache memory (default 4)"),
    ("--ctx", "context length per sequence (default: the model's)"),
)
"""(flag, help) pairs for the CLI, in the order above."""
