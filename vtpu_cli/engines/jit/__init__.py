"""engines.jit."""
