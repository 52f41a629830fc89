"""WSGI entry (``gunicorn comfyq.wsgi:app``): everything but held event streams; ``comfyq.asgi`` serves those too."""
from . import create_app
from .db.extensions import init_migrate

app = create_app()
init_migrate(app)  # ``FLASK_APP=comfyq.wsgi flask db …``
