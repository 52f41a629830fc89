"""The GPU worker: its task, the runner, its bootsteps and threads (its process entry: comfyq.cli.gpu_worker)."""
