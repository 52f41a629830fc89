"""Settings read once from ``COMFYQ_*`` environment variables, and the rules they must meet together."""
