"""The GPU worker: its Celery entry and tasks, the runner, recovery, and the threads beside Celery."""
