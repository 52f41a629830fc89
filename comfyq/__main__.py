"""``python -m comfyq`` runs the comfyq command."""
from .cli import main

main()
