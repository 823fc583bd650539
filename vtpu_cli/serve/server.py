"""`serve_command`: load a model, bind a socket, run the ASGI app on uvicorn, drain on SIGTERM/Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_BAD_INPUT, EXIT_MISSING, EXIT_INTERRUPTED = 0, 2, 3, 130
DRAIN_SECONDS = 30.0  # in-flight requests get this long to finish after SIGTERM / Ctrl-C
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _err(message: str) -> None:
    print(f"vtpu serve: error: {message}", file=sys.stderr)


ENGINES = ("jit", "interp", "reference")


def serve_command(
    model: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    sentrons: int = 1,
    max_concurrent: int = 4,
    ctx: int = 0,
    *,
    engine: str = "jit",
    max_waiting: int = 256,
    ready: Any = None,
) -> int:
    """Run the server until SIGTERM or Ctrl-C; returns the exit code (0, or 130 after Ctrl-C).

    `engine`: "jit" or "interp" run the compiled model (the toolchain's path); "reference" the batched
    float64 numpy reference. `ctx` 0 means the model's own context length. `port` 0 picks a free port (printed on stdout).
    Bad input (missing or corrupt model, bad numbers, address in use) prints one line and returns 2;
    a missing `vtpu[serve]` dependency returns 3. `ready(port)` is called once the socket listens.
    """
    try:
        return _serve(model, host, port, sentrons, max_concurrent, ctx, max_waiting, ready, engine)
    except KeyboardInterrupt:  # Ctrl-C while the model loads
        return EXIT_INTERRUPTED


def _serve(
    model: Path,
    host: str,
    port: int,
    sentrons: int,
    max_concurrent: int,
    ctx: int,
    max_waiting: int,
    ready: Any,
    engine_name: str = "jit",
) -> int:
    if engine_name not in ENGINES:
        _err(f"unknown engine {engine_name!r} (choose from {', '.join(ENGINES)})")
        return EXIT_BAD_INPUT
    for name, value, lo in (
        ("--sentrons", sentrons, 1),
        ("--max-concurrent", max_concurrent, 1),
        ("--ctx", ctx, 0),
    ):
        if value < lo:
            _err(f"{name} must be at least {lo}, got {value}")
            return EXIT_BAD_INPUT
    if not 0 <= port <= 65535:
        _err(f"--port must be between 0 and 65535, got {port}")
        return EXIT_BAD_INPUT
    try:
        import jinja2  # noqa: F401  (chat templates)
        import starlette  # noqa: F401
        import uvicorn
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        _err(f"the server needs the 'serve' extra ({exc.name} is missing): pip install 'vtpu[serve]'")
        return EXIT_MISSING

    from vtpu_cli.models import ModelError
    from vtpu_cli.serve.app import create_app
    from vtpu_cli.serve.engine import Engine
    from vtpu_cli.serve.refbackend import ReferenceBackend

    # The numpy reference uses BLAS; one engine thread with --sentrons BLAS threads. OpenBLAS's default
    # (a thread per core, spinning) makes small batched steps ten times slower on a busy machine.
    threadpool_limits(sentrons, user_api="blas")
    try:
        if engine_name == "reference":
            backend = ReferenceBackend.load(model, ctx=ctx or None)
        else:
            from vtpu_cli.serve.compiledbackend import CompiledBackend

            print(
                f"vtpu serve: compiling the model step for the {engine_name} engine",
                file=sys.stderr,
                flush=True,
            )
            backend = CompiledBackend.load(model, ctx=ctx or None, engine=engine_name, sentrons=sentrons)
    except (ModelError, ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    try:
        sock = _bind(host, port)
    except OSError as exc:
        _err(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT

    engine = Engine(backend, max_concurrent=max_concurrent, max_waiting=max_waiting)
    app = create_app(backend, engine)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=DRAIN_SECONDS, lifespan="on"
    )
    server = _make_server(config)

    # From here on a signal asks for a clean stop, even one that comes before uvicorn installs its handlers.
    def early_stop(sig: int, frame: Any) -> None:
        server.signals.append(sig)
        server.should_exit = True

    early = _on_signals(early_stop)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    kv = backend.state_bytes()
    print(
        f"vtpu serve: model '{backend.model_id}' ({backend.model.fmt}, {backend.cfg.layers} layers, "
        f"hidden {backend.cfg.hidden}, vocab {backend.vocab_size}), context {backend.ctx}, "
        f"{max_concurrent} concurrent sequences (KV cache up to {kv / 2**20:.1f} MiB each, "
        f"{kv * max_concurrent / 2**20:.1f} MiB in all), "
        f"{'batched decode on the numpy reference' if engine_name == 'reference' else engine_name + ' engine, compiled step'}",
        flush=True,
    )
    if host not in LOOPBACK:
        print(
            f"vtpu serve: warning: listening on {host}, reachable from other machines (no authentication)",
            file=sys.stderr,
        )
    print(f"vtpu serve: listening on http://{shown}:{bound_port}  (Ctrl-C or SIGTERM to stop)", flush=True)
    if ready is not None:
        ready(bound_port)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return EXIT_INTERRUPTED
    finally:
        sock.close()
        _restore(early)
    print("vtpu serve: stopped", flush=True)
    return EXIT_INTERRUPTED if signal.SIGINT in server.signals else EXIT_OK


def _on_signals(handler: Any) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to `handler` (main thread only); the previous handlers, for `_restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (made here so that port 0 works and bind errors are reported cleanly)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _make_server(config: Any) -> Any:
    """uvicorn's server, but a caught SIGTERM/SIGINT is remembered (in `.signals`) rather than re-raised
    at exit, so that the command returns an exit code after draining instead of dying by the signal."""
    import uvicorn

    class Server(uvicorn.Server):
        signals: list[int]

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            def handler(sig: int, frame: Any) -> None:
                self.signals.append(sig)
                self.handle_exit(sig, frame)

            previous = _on_signals(handler)
            try:
                yield
            finally:
                _restore(previous)

    server = Server(config)
    server.signals = []
    return server
