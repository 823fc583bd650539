"""vtpu: a toolchain and runtime for a virtual 3-pipe tensor processor on x86-64 CPUs."""

__version__ = "0.1.0"
