"""``python -m comfyq`` runs the comfyq command."""
from .cli.main import main

main()
