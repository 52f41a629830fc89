"""The ``comfyq`` command, the worker processes it starts, and ``comfyq up``: the whole stack as child processes."""
