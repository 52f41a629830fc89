"""WSGI entry for gunicorn: ``gunicorn comfyq.wsgi:app``."""
from . import create_app

app = create_app()
