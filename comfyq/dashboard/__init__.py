"""The operators' live dashboard at /dashboard: instances, queues, fair share, recent jobs, webhooks, credits.

An admin or teacher signs in once with an API key and gets a session cookie
(``auth``). The page (``static/``) reads a snapshot, then follows an event
stream of snapshots that the ASGI layer holds open (``live``) and sends on
every job event; it cancels jobs through the same code as the API.
"""
from __future__ import annotations

from flask import Flask


def init_dashboard(flask_app: Flask) -> None:
    """Register the dashboard's routes."""
    from . import views

    flask_app.register_blueprint(views.bp)
