"""The control queue: its beat tasks, the reconciler and output retention (its process: comfyq.cli.beat)."""
