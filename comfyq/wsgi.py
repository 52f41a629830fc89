"""WSGI entry (``gunicorn comfyq.wsgi:app``): everything but held event streams; ``comfyq.asgi`` serves those too."""
from . import create_app

app = create_app()
