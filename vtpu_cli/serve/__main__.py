"""`python -m vtpu_cli.serve MODEL [--host H] [--port N] [--sentrons N] [--max-concurrent K] [--ctx N]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vtpu_cli.serve.server import serve_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vtpu serve", description="OpenAI-compatible server for BitNet models"
    )
    parser.add_argument("model", type=Path, help="a Hugging Face BitNet directory or a .gguf file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--sentrons", "-n", type=int, default=1, help="compute threads (default 1)")
    parser.add_argument(
        "--max-concurrent", type=int, default=4, help="sequences decoded together (default 4)"
    )
    parser.add_argument(
        "--ctx", type=int, default=0, help="context length per sequence (default: the model's)"
    )
    parser.add_argument(
        "--engine",
        choices=("jit", "interp", "reference"),
        default="jit",
        help="jit/interp: the compiled model (default jit); reference: the batched numpy reference",
    )
    args = parser.parse_args(argv)
    return serve_command(
        args.model, args.host, args.port, args.sentrons, args.max_concurrent, args.ctx, engine=args.engine
    )


if __name__ == "__main__":
    sys.exit(main())
