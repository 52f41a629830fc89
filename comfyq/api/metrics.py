"""``/metrics``: the Prometheus text exposition, for an admin's API key or the scrape token."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from ..accounts.users import user_for_key
from ..db.extensions import get_redis
from ..errors import Forbidden, Unauthorized
from ..jobs import broker

bp = Blueprint("metrics", __name__)
# The classic text format every Prometheus reads (prometheus_client's "latest" moved to 1.0.0 in 0.22).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _check_scraper() -> None:
    """Let through the scrape token or an admin's key; answer 401 or 403 otherwise."""
    header = request.headers.get("Authorization", "")
    presented = (header[7:] if header[:7].lower() == "bearer " else request.headers.get("X-API-Key", "")).strip()
    if not presented:
        raise Unauthorized("send an admin's API key or COMFYQ_METRICS_TOKEN: 'Authorization: Bearer <key>'")
    token = current_app.config["METRICS_TOKEN"]
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return
    user = user_for_key(presented)
    if user is None:
        raise Unauthorized("this key is neither COMFYQ_METRICS_TOKEN nor a live API key")
    if user.role != "admin":
        raise Forbidden(f"metrics need an admin's key or COMFYQ_METRICS_TOKEN; your key belongs to a {user.role}")


def _queue_depths() -> dict[str, int]:
    """Read how many messages wait in each of comfyq's broker queues."""
    client = broker.connect()
    try:
        return broker.queue_depths(client, broker.queue_names())
    finally:
        client.close()


@bp.route("/metrics")
def metrics() -> Response:
    """Answer one scrape of every comfyq metric."""
    from ..metrics.collector import Collector, render  # prometheus_client: loaded at the first scrape, not at start

    _check_scraper()
    body = render(Collector(get_redis(), current_app.config, _queue_depths))
    return Response(body, mimetype=None, content_type=CONTENT_TYPE)
