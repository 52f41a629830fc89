"""ComfyUI client: the only code in comfyq that talks to a ComfyUI server."""
from . import errors
from .client import ComfyClient
from .errors import (ComfyConnectFailed, ComfyError, ComfyProtocolError, ComfyTimeout, ComfyUnreachable,
                     ExecutionFailed, ExecutionInterrupted, OutputMissing, PromptLost, PromptRejected)

__all__ = ["ComfyClient", *errors.__all__]
