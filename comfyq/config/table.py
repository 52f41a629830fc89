"""Every ``COMFYQ_*`` setting, declared once: Config, .env.example and the README's table come from here.

Config reads the settings in this order, so a computed default may use any
setting above it. Edit a setting here, then run ``python3 -m comfyq.config
write`` to regenerate .env.example and the README's table (a test compares).
"""
from __future__ import annotations

from pathlib import Path

from .allowlist import Allowlist
from .parsers import default_data_dir, default_templates_dir, with_default_role_limits
from .setting import (ALLOWLIST, BASE_URL, CAPABILITIES, COMMAND, DIRECTORY, INSTANCES, NAMES, NUMBER, PATH,
                      ROLE_LIMITS, TEXT, URL, WHOLE, Setting)

# Nodes that run arbitrary code or write arbitrary files; raw workflows may not use them.
DEFAULT_BLOCKLIST = (
    "ExecutePython", "PythonScript", "RunPythonCode", "Exec Python Code", "KY_Eval_Python", "Eval",
    "ShellCommand", "RunCommand", "Execute Command", "SaveText|pysssss", "Save Text File",
    "Text to File", "WriteToFile", "SaveFile", "LoadFileFromPath",
)
S = Setting

SETTINGS: tuple[Setting, ...] = (
    # Where things are.
    S("COMFYQ_INSTANCES", INSTANCES, lambda _: {}, "ComfyUI servers, one worker each: ``gpu0=http://host:8188,…``",
      shown="none (``up`` starts sims)", example="gpu0=http://127.0.0.1:8188,gpu1=http://127.0.0.1:8189",
      active=True),
    S("COMFYQ_CAPABILITIES", CAPABILITIES, lambda read: read["INSTANCES"],
      "what instances offer: ``gpu1=sdxl+flux,…``", shown="none (``up``: ``gpu1=sdxl``)", attr="INSTANCES",
      example="gpu1=sdxl+flux"),
    S("COMFYQ_REDIS_URL", URL, "redis://127.0.0.1:6379/0", "broker, result backend, events", active=True),
    S("COMFYQ_BROKER_URL", URL, lambda read: read["REDIS_URL"], "the Celery broker, when not that Redis",
      shown="``COMFYQ_REDIS_URL``"),
    S("COMFYQ_DATA_DIR", DIRECTORY, lambda _: str(default_data_dir()), "embedded defaults live here",
      shown="``./var``", example="./var", active=True),
    S("COMFYQ_DATABASE_URL", URL, lambda read: f"sqlite:///{Path(read['DATA_DIR']) / 'comfyq.db'}",
      "SQLAlchemy URL (PostgreSQL in production)", shown="SQLite in the data dir", attr="SQLALCHEMY_DATABASE_URI",
      example="postgresql+psycopg://comfyq:comfyq@127.0.0.1:5432/comfyq"),
    S("COMFYQ_TEMPLATES_DIR", PATH, lambda _: str(default_templates_dir()), "the template store",
      shown="``./templates_wf``"),
    S("COMFYQ_PUBLIC_URL", BASE_URL, "", "base of output URLs behind a proxy", shown="the request's host",
      example="https://comfyq.example.org"),
    S("COMFYQ_OUTPUT_DIR", PATH, lambda read: str(Path(read["DATA_DIR"]) / "outputs"), "stored outputs",
      shown="``$COMFYQ_DATA_DIR/outputs``"),
    S("COMFYQ_INPUT_DIR", PATH, lambda read: str(Path(read["DATA_DIR"]) / "inputs"), "staged input images",
      shown="``$COMFYQ_DATA_DIR/inputs``"),
    # Outputs and input images: a local directory each, or one S3-compatible bucket.
    S("COMFYQ_STORAGE", TEXT, "local", "``local`` (the two directories above) or ``s3``"),
    S("COMFYQ_S3_BUCKET", TEXT, "", "the bucket of outputs and input images"),
    S("COMFYQ_S3_PREFIX", TEXT, "", "key prefix inside it (``team-a/``)"),
    S("COMFYQ_S3_ENDPOINT_URL", URL, None, "MinIO, Ceph, R2…; unset for AWS itself", shown="AWS",
      example="http://minio:9000"),
    S("COMFYQ_S3_REGION", TEXT, "us-east-1", "the bucket's region"),
    S("COMFYQ_S3_URL_EXPIRES", WHOLE, 3600, "lifetime of presigned output URLs, seconds"),
    S("COMFYQ_OUTPUT_RETENTION_HOURS", NUMBER, 0.0, "outputs older than this are deleted", shown="0 (kept for ever)"),
    S("COMFYQ_RETENTION_INTERVAL", NUMBER, 600.0, "seconds between retention sweeps"),
    # Webhooks: internal addresses they may call anyway, and how long and how often a failing one is retried.
    S("COMFYQ_WEBHOOK_ALLOW", ALLOWLIST, Allowlist(), "hosts, addresses, networks webhooks may call though "
      "internal: ``127.0.0.1,10.0.0.0/8,hooks.internal``", shown="none (public addresses only)",
      example="10.0.0.0/8,hooks.internal"),
    S("COMFYQ_WEBHOOK_TIMEOUT", NUMBER, 10.0, "seconds a receiver has to connect and answer"),
    S("COMFYQ_WEBHOOK_BACKOFF", NUMBER, 5.0, "first retry after this many seconds, doubling"),
    S("COMFYQ_WEBHOOK_BACKOFF_MAX", NUMBER, 3600.0, "longest wait between two attempts, seconds"),
    S("COMFYQ_WEBHOOK_RETRY_FOR", NUMBER, 86400.0, "retries end this long (s) after the event"),
    S("COMFYQ_WEBHOOK_CONCURRENCY", WHOLE, 8, "deliveries ``comfyq webhooks`` sends at once"),
    S("COMFYQ_WEBHOOK_PROGRESS_EVERY", NUMBER, 5.0, "seconds between a job's progress webhooks"),
    # Templates and requests.
    S("COMFYQ_TEMPLATE_CATALOGUE", PATH, None, "an exported ``/object_info`` (custom nodes)",
      shown="the simulator's only"),
    S("COMFYQ_MAX_OUTPUT_PIXELS", NUMBER, 4096 * 4096, "``max_output_pixels`` in template formulas"),
    S("COMFYQ_SOFT_TIME_LIMIT", NUMBER, 600.0, "soft limit of raw workflows, seconds"),
    S("COMFYQ_TIME_LIMIT_GRACE", NUMBER, 60.0, "hard limit = soft limit + this"),
    S("COMFYQ_MAX_TIME_LIMIT", NUMBER, 3600.0, "cap on any soft limit a template computes"),
    S("COMFYQ_MAX_BODY_BYTES", WHOLE, 16_000_000, "largest accepted request body (413 above it)"),
    S("COMFYQ_READ_TIMEOUT", NUMBER, 10.0, "seconds a client may pause while sending a request (then 408) "
      "or reading an answer"),
    S("COMFYQ_BODY_DEADLINE", NUMBER, 120.0, "seconds a request body may take in all"),
    S("COMFYQ_MAX_PREFER_WAIT", WHOLE, 60, "most seconds ``Prefer: wait=N`` holds a submission (0: off)"),
    S("COMFYQ_MAX_WORKFLOW_NODES", WHOLE, 500, "most nodes in one workflow"),
    S("COMFYQ_MAX_BATCH_JOBS", WHOLE, 100, "most jobs one batch may create"),
    S("COMFYQ_MAX_UPLOAD_BYTES", WHOLE, 10_000_000, "largest image upload"),
    S("COMFYQ_MAX_UPLOAD_PIXELS", WHOLE, 4096 * 4096, "most pixels of an uploaded or inline image"),
    S("COMFYQ_CATALOGUE_TTL", NUMBER, 30.0, "seconds the API reuses a published node catalogue"),
    S("COMFYQ_NODE_BLOCKLIST", NAMES, frozenset(DEFAULT_BLOCKLIST), "node classes raw workflows may not use",
      shown="code/file nodes", example=",".join(DEFAULT_BLOCKLIST)),
    S("COMFYQ_NODE_ALLOWLIST", NAMES, frozenset(), "if set, the only classes raw workflows use", shown="none"),
    # Accounts: raw workflows have no cost formula; free roles are never charged.
    S("COMFYQ_RAW_WORKFLOW_ROLES", NAMES, frozenset(("admin", "service", "teacher", "user")),
      "roles that may send raw workflows", shown="``admin,service,teacher,user``",
      example="admin,service,teacher,user"),
    S("COMFYQ_FREE_ROLES", NAMES, frozenset(("admin", "service")), "roles never charged credits",
      shown="``admin,service``", example="admin,service"),
    S("COMFYQ_RAW_JOB_COST", WHOLE, 1, "credits a raw workflow costs"),
    # The ComfyUI editor under /comfy/: how long a student's session cookie lives once its link is opened.
    S("COMFYQ_EDITOR_SESSION_HOURS", NUMBER, 12.0, "lifetime of an editor session (``/comfy/`` cookie), hours"),
    S("COMFYQ_OPERATOR_SESSION_HOURS", NUMBER, 12.0, "lifetime of an operator's ``/dashboard`` sign-in, hours"),
    # Fair share: by default one user may fill every GPU, and a newcomer waits at most one job per GPU.
    S("COMFYQ_MAX_RUNNING_PER_USER", WHOLE, lambda read: max(1, len(read["INSTANCES"])),
      "a user's jobs queued or running at once", shown="the number of instances"),
    S("COMFYQ_MAX_WAITING_PER_USER", WHOLE, 1000, "a user's jobs pending or queued (0: no cap)"),
    S("COMFYQ_SUBMIT_RATE_PER_MINUTE", WHOLE, 600, "a user's submissions per minute (0: no cap)"),
    # Fair share: a lookahead of one job per GPU, so a backlog never waits in the broker's FIFO ahead of newcomers.
    S("COMFYQ_MAX_ADMITTED", WHOLE, lambda read: 2 * max(1, len(read["INSTANCES"])),
      "all users' jobs queued or running (0: no cap)", shown="two per instance"),
    S("COMFYQ_ROLE_LIMITS", ROLE_LIMITS, lambda _: with_default_role_limits({}),
      "by role: ``student:running=1;teacher:weight=3``",
      shown="``service``: no waiting or rate cap", example="student:running=1,waiting=20,rate=30"),
    # Reliability: a live worker renews its messages every second, so VISIBILITY_TIMEOUT only bounds how late a
    # crash is noticed; INTERRUPT_GRACE is how long a soft-limited prompt may take to stop.
    S("COMFYQ_INTERRUPT_GRACE", NUMBER, 10.0, "after a soft limit, seconds the prompt has to stop before its "
      "instance counts as stuck"),
    S("COMFYQ_VISIBILITY_TIMEOUT", NUMBER, 8.0, "a dead worker's job goes back after this"),
    S("COMFYQ_HEALTH_INTERVAL", NUMBER, 1.0, "seconds between instance health checks"),
    S("COMFYQ_HEALTH_FAILURES", WHOLE, 2, "failed checks in a row meaning unhealthy"),
    S("COMFYQ_MAX_ATTEMPTS", WHOLE, 3, "runs of a job whose instance dies or is never reached"),
    S("COMFYQ_DRAIN_TIMEOUT", NUMBER, 60.0, "on SIGTERM, how long the running job may end"),
    S("COMFYQ_LOOKAHEAD", WHOLE, 2, "jobs a GPU worker holds: the running one, and the next ones whose "
      "prompts wait on its instance, so it starts them at once (1: none)"),
    S("COMFYQ_RECONCILE_INTERVAL", NUMBER, 10.0, "seconds between reconciler passes"),
    S("COMFYQ_RECONCILE_GRACE", NUMBER, 30.0, "a queued job younger than this is left alone"),
    # Metrics: /metrics answers an admin's API key, or this token (for a Prometheus that holds no user's key).
    S("COMFYQ_METRICS_TOKEN", TEXT, "", "a bearer token ``/metrics`` also accepts", shown="none (admin keys only)"),
    S("COMFYQ_METRICS_TOP_USERS", WHOLE, 10, "users with the most running jobs shown by ``/metrics``"),
    # Read by one command only (its options' defaults), not by Config.
    S("COMFYQ_API_THREADS", WHOLE, None, "request threads per process (``--threads``)", reader="``comfyq api``",
      shown="1 on SQLite, else 4"),
    S("COMFYQ_COMFY_CMD", COMMAND, None, "start and own this ComfyUI (``--comfy-cmd``)", reader="``comfyq worker``",
      example="python /opt/ComfyUI/main.py --port 8188"),
    S("COMFYQ_COMFY_MAX_JOBS", WHOLE, 0, "restart its ComfyUI, when idle, after N jobs", reader="``comfyq worker``",
      shown="0 (never)"),
    S("COMFYQ_COMFY_MAX_RSS_MB", NUMBER, 0.0, "… or above this memory in MB (RSS, with children)",
      reader="``comfyq worker``", shown="0 (never)"),
    S("COMFYQ_COMFY_FREE_AFTER_IDLE", NUMBER, 0.0, "``POST /free`` after this many idle seconds",
      reader="``comfyq worker``", shown="0 (never)"),
    S("COMFYQ_FLOWER_USER", TEXT, "admin", "Flower's basic-auth user", reader="``comfyq flower``"),
    S("COMFYQ_FLOWER_PASSWORD", TEXT, None, "its password (pages and API)", reader="``comfyq flower``",
      shown="made beyond loopback"),
    S("COMFYQ_API_URL", URL, "http://127.0.0.1:8000", "the API it calls (``--api-url``)", reader="CLI"),
    S("COMFYQ_API_KEY", TEXT, None, "your API key (``--api-key``)", reader="CLI"),
    # The test suite: ``1`` makes the browser tests refresh the README's screenshots.
    S("COMFYQ_UPDATE_SCREENSHOTS", TEXT, None, "tests only: ``1`` saves browser tests' screenshots into ``docs/``"),
)

# Variables comfyq sets for its own child processes: nobody configures them, so they are not settings.
INTERNAL = {
    "COMFYQ_WORKER_INSTANCE": "set by ``comfyq worker NAME`` for the Celery processes it forks (worker/binding.py)",
    "COMFYQ_ROOT_NOTED": "set by ``comfyq up`` once it has said that it runs as root, so its workers keep quiet",
}
