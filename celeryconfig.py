"""Celery settings for comfyq, derived from the COMFYQ_* environment.

``comfyq.celery_app`` applies ``settings(flask_app.config)``; the module-level
names are the same settings read from the environment, for ``celery -A``
tools that load this module directly.
"""
from __future__ import annotations

from typing import Any, Mapping

from kombu import Queue

from comfyq.config.settings import CONTROL_QUEUE, SHARED_QUEUE, WEBHOOK_QUEUE, Config


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return Celery's lowercase settings for a comfyq configuration."""
    instances = config["INSTANCES"].values()
    grace = float(config["TIME_LIMIT_GRACE"])
    extra_queues = sorted({q for i in instances for q in i.queues()})
    return {
        "broker_url": config["BROKER_URL"],
        "result_backend": config["REDIS_URL"],
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Short, because each live worker renews the messages it holds every second (comfyq.lease):
            # only a dead worker's messages age past it and go back to their queue.
            "visibility_timeout": float(config["VISIBILITY_TIMEOUT"]),
            # Scan for such messages every 2 s instead of every 100 s.
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
            "unacked_restore_limit": 100,
        },
        "task_queues": [Queue(SHARED_QUEUE, routing_key=SHARED_QUEUE),
                        *(Queue(name, routing_key=name) for name in extra_queues),
                        Queue(CONTROL_QUEUE, routing_key=CONTROL_QUEUE),
                        Queue(WEBHOOK_QUEUE, routing_key=WEBHOOK_QUEUE)],
        "task_default_queue": SHARED_QUEUE,
        "task_routes": {"comfyq.run_job": {"queue": SHARED_QUEUE},
                        "comfyq.reconcile": {"queue": CONTROL_QUEUE},
                        "comfyq.expire_outputs": {"queue": CONTROL_QUEUE},
                        "comfyq.deliver_webhook": {"queue": WEBHOOK_QUEUE},
                        "comfyq.resend_webhooks": {"queue": CONTROL_QUEUE}},
        # A pass nobody ran in time is skipped, not stacked up behind the next one.
        "beat_schedule": {
            "reconcile": {"task": "comfyq.reconcile", "schedule": float(config["RECONCILE_INTERVAL"]),
                          "options": {"queue": CONTROL_QUEUE, "expires": float(config["RECONCILE_INTERVAL"])}},
            "expire_outputs": {"task": "comfyq.expire_outputs", "schedule": float(config["RETENTION_INTERVAL"]),
                               "options": {"queue": CONTROL_QUEUE, "expires": float(config["RETENTION_INTERVAL"])}},
            # Webhook deliveries whose message was lost (a broker outage at the wrong moment) are sent again.
            "resend_webhooks": {"task": "comfyq.resend_webhooks", "schedule": float(config["RECONCILE_INTERVAL"]),
                                "options": {"queue": CONTROL_QUEUE, "expires": float(config["RECONCILE_INTERVAL"])}}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": False,  # one more Redis publish per submission; Flower reads queue depth from the broker
        "task_track_started": False,  # the DB records running; this would cost a backend write per job
        "task_ignore_result": True,
        "result_expires": 86400,
        "task_soft_time_limit": float(config["SOFT_TIME_LIMIT"]),
        "task_time_limit": float(config["SOFT_TIME_LIMIT"]) + grace,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
    }


globals().update(settings(Config().as_dict()))
