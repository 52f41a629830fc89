"""The ComfyUI instances as workers see them: status in Redis, and each live worker's lease."""
