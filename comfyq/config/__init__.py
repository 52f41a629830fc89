"""Settings read once from ``COMFYQ_*`` variables, declared in ``table``, and the rules they must meet together."""
