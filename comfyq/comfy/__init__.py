"""ComfyUI client: the only code in comfyq that talks to a ComfyUI server."""
from .client import ComfyClient
from .errors import (ComfyConnectFailed, ComfyError, ComfyProtocolError, ComfyTimeout, ComfyUnreachable,
                     ExecutionFailed, ExecutionInterrupted, OutputMissing, PromptLost,
                     PromptRejected)

__all__ = [
    "ComfyClient",
    "ComfyError",
    "ComfyUnreachable",
    "ComfyConnectFailed",
    "ComfyTimeout",
    "ComfyProtocolError",
    "OutputMissing",
    "PromptRejected",
    "PromptLost",
    "ExecutionFailed",
    "ExecutionInterrupted",
]
