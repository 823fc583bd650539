"""engines.interp."""
