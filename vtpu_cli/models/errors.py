"""The one error type of the model layer.

Every problem with a model file (missing, truncated, corrupt, unsupported, inconsistent) raises
`ModelError` with a message that names the file and the key or tensor at fault, so that the command
line can report it as bad input (exit code 2) without a traceback.
"""

from __future__ import annotations


class ModelError(Exception):
    """A model file or directory cannot be used; the message names the file and the key or tensor."""
