"""The rules the settings must meet together; a broken one stops start-up with what to fix."""
from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A COMFYQ_* setting is malformed; the message says which and how to fix it."""


def check(config: Any) -> None:
    """Raise ConfigError naming the first rule ``config`` (a ``comfyq.config.settings.Config``) breaks."""
    if not 0 < config.SOFT_TIME_LIMIT <= config.MAX_TIME_LIMIT:
        raise ConfigError("COMFYQ_SOFT_TIME_LIMIT must be positive and at most COMFYQ_MAX_TIME_LIMIT")
    if config.TIME_LIMIT_GRACE <= 0:
        raise ConfigError("COMFYQ_TIME_LIMIT_GRACE must be positive (the hard limit is soft + grace)")
    if not 0 < config.INTERRUPT_GRACE < config.TIME_LIMIT_GRACE:
        raise ConfigError("COMFYQ_INTERRUPT_GRACE must be positive and below COMFYQ_TIME_LIMIT_GRACE, "
                          "so a prompt that ignores its interrupt is caught before the hard limit")
    if config.VISIBILITY_TIMEOUT < 3 or config.HEALTH_INTERVAL <= 0 or config.HEALTH_FAILURES < 1:
        raise ConfigError("COMFYQ_VISIBILITY_TIMEOUT must be at least 3 s, COMFYQ_HEALTH_INTERVAL positive "
                          "and COMFYQ_HEALTH_FAILURES at least 1")
    if config.MAX_ATTEMPTS < 1 or config.DRAIN_TIMEOUT < 0 or config.RECONCILE_INTERVAL <= 0:
        raise ConfigError("COMFYQ_MAX_ATTEMPTS must be at least 1, COMFYQ_DRAIN_TIMEOUT not negative "
                          "and COMFYQ_RECONCILE_INTERVAL positive")
    if config.LOOKAHEAD < 1:
        raise ConfigError("COMFYQ_LOOKAHEAD must be at least 1 (1: a worker holds only its running job)")
    if min(config.RAW_JOB_COST, config.MAX_WAITING_PER_USER, config.SUBMIT_RATE_PER_MINUTE, config.MAX_ADMITTED) < 0 \
            or config.MAX_RUNNING_PER_USER < 1:
        raise ConfigError("COMFYQ_MAX_RUNNING_PER_USER must be at least 1; COMFYQ_RAW_JOB_COST, "
                          "COMFYQ_MAX_WAITING_PER_USER, COMFYQ_SUBMIT_RATE_PER_MINUTE and COMFYQ_MAX_ADMITTED "
                          "may not be negative")
    if config.OUTPUT_RETENTION_HOURS < 0 or config.RETENTION_INTERVAL <= 0:
        raise ConfigError("COMFYQ_OUTPUT_RETENTION_HOURS may not be negative (0 keeps outputs for ever) "
                          "and COMFYQ_RETENTION_INTERVAL must be positive")
    if not 0 < config.WEBHOOK_TIMEOUT <= 300 or not 0 < config.WEBHOOK_BACKOFF <= config.WEBHOOK_BACKOFF_MAX \
            or config.WEBHOOK_RETRY_FOR < 0 or config.WEBHOOK_CONCURRENCY < 1 or config.WEBHOOK_PROGRESS_EVERY < 1:
        raise ConfigError("COMFYQ_WEBHOOK_TIMEOUT must be positive and at most 300 s, COMFYQ_WEBHOOK_BACKOFF "
                          "positive and at most COMFYQ_WEBHOOK_BACKOFF_MAX, COMFYQ_WEBHOOK_RETRY_FOR not "
                          "negative (0: one attempt), COMFYQ_WEBHOOK_CONCURRENCY and COMFYQ_WEBHOOK_PROGRESS_EVERY "
                          "at least 1")
    if not 0 < config.MAX_UPLOAD_BYTES <= config.MAX_BODY_BYTES or config.MAX_UPLOAD_PIXELS <= 0:
        raise ConfigError("COMFYQ_MAX_UPLOAD_BYTES must be positive and at most COMFYQ_MAX_BODY_BYTES, and "
                          "COMFYQ_MAX_UPLOAD_PIXELS positive")
    if not 0 < config.EDITOR_SESSION_HOURS <= 24 * 366:
        raise ConfigError("COMFYQ_EDITOR_SESSION_HOURS must be positive and at most a year (8784)")
    if not 0 < config.READ_TIMEOUT <= config.BODY_DEADLINE:
        raise ConfigError("COMFYQ_READ_TIMEOUT must be positive and at most COMFYQ_BODY_DEADLINE "
                          "(seconds a client may pause while sending a request, and take in all)")
    if not 0 <= config.MAX_PREFER_WAIT <= 3600:
        raise ConfigError("COMFYQ_MAX_PREFER_WAIT must be between 0 (submissions never wait) and 3600 seconds")
    if not 0 < config.S3_URL_EXPIRES <= 604800:
        raise ConfigError("COMFYQ_S3_URL_EXPIRES must be between 1 and 604800 seconds (SigV4's limit)")
    if config.STORAGE not in ("local", "s3") or (config.STORAGE == "s3" and not config.S3_BUCKET):
        raise ConfigError("COMFYQ_STORAGE must be local or s3, and s3 needs COMFYQ_S3_BUCKET "
                          "(with COMFYQ_S3_ENDPOINT_URL for anything but AWS)")
