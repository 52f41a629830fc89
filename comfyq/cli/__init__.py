"""The ``comfyq`` command, and ``comfyq up``: the whole stack as supervised child processes."""
