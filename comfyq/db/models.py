"""SQLAlchemy models: users, their keys and credits, jobs and their outputs, webhooks, editor sessions and files."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .timestamps import UTCDateTime, aware, utcnow  # noqa: F401 - aware is re-exported


def new_id() -> str:
    """Return a fresh random id."""
    return str(uuid.uuid4())


def new_job_id() -> str:
    """Return a fresh job id; it doubles as the ComfyUI prompt id and Celery task id."""
    return str(uuid.uuid4())


class User(db.Model):
    """Someone (or some service) who sends work; owns jobs, batches and outputs."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16), default="novice")
    teacher_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)  # a student's teacher
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # credits; the ledger's sum
    # Limits of this user alone; None falls back to the role's, then the global setting.
    max_running: Mapped[int | None] = mapped_column(Integer)
    max_waiting: Mapped[int | None] = mapped_column(Integer)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[int | None] = mapped_column(Integer)  # fair-share weight: holds this many slots per one of a 1
    # Fair share: the admission row's ``served`` count when this user last had a job admitted (None: never).
    last_served: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(db.Model):
    """One API key of a user: only the SHA-256 of its secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public part, shown in listings
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class LedgerEntry(db.Model):
    """One change of a user's balance; a job has at most one entry of each kind."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # grant, debit, refund or adjustment
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: a debit is negative
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    note: Mapped[str | None] = mapped_column(String(255))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))  # the admin behind a grant or adjustment
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdmissionLock(db.Model):
    """The one row every admission decision updates first, so decisions happen one at a time."""

    __tablename__ = "admission"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    served: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # admissions ever made


class Job(db.Model):
    """One workflow run, from acceptance to a terminal state."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_queue_created", "status", "queue", "created_at"),
                      Index("ix_jobs_user_status_created", "user_id", "status", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    instance_requested: Mapped[str | None] = mapped_column(String(32))
    instance: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(255))  # the Celery worker that ran it last
    prompt_id: Mapped[str | None] = mapped_column(String(64))
    workflow: Mapped[dict[str, Any]] = mapped_column(JSON)
    workflow_format: Mapped[str | None] = mapped_column(String(8))  # "api" or "saved" (converted); None: template
    template: Mapped[str | None] = mapped_column(String(64))
    template_version: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cost: Mapped[int | None] = mapped_column(Integer)
    soft_time_limit: Mapped[float | None] = mapped_column(Float)
    inputs: Mapped[list[str] | None] = mapped_column(JSON)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), index=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))  # its own, or its owner's default when submitted
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)  # optional events besides the end
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Moves with every change; the reconciler uses it to leave just-queued jobs alone.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    outputs: Mapped[list["Output"]] = relationship(
        back_populates="job", order_by="Output.id", cascade="all, delete-orphan", lazy="selectin")


class Batch(db.Model):
    """Jobs made from one template with varied parameters, created all at once."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    template: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    jobs: Mapped[list[Job]] = relationship(order_by="Job.created_at", lazy="selectin")


class Upload(db.Model):
    """An image or mask a user uploaded; the bytes are stored once under their sha256, whoever sends them."""

    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("user_id", "sha256", "kind", name="uq_uploads_user_sha256_kind"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # image or mask
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(80))  # <sha256>.<ext>: its key in the input store and on instances
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Output(db.Model):
    """One file a job produced, as stored by comfyq."""

    __tablename__ = "outputs"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    node_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # deleted by retention

    job: Mapped[Job] = relationship(back_populates="outputs")


class WebhookSettings(db.Model):
    """A user's default webhook and the secret every delivery to that user is signed with."""

    __tablename__ = "webhook_settings"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    events: Mapped[list[str] | None] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(64))  # an HMAC key, so kept as is; shown only to its owner
    # The text of a secret made before Standard Webhooks (base64url): keys the deprecated Comfyq-Signature only.
    legacy_secret: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(db.Model):
    """One event of a job to send to its webhook, with its payload as first recorded."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)  # also Comfyq-Delivery
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    event: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed or refused
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempt_log: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.number", cascade="all, delete-orphan", lazy="selectin")


class WebhookAttempt(db.Model):
    """One try at sending a delivery: when, what the receiver answered, how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)  # None: no HTTP answer (connection error, refused)
    error: Mapped[str | None] = mapped_column(String(1024))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class EditorSession(db.Model):
    """A student's session in ComfyUI's editor under /comfy/: a single-use ticket, then a cookie; hashes only."""

    __tablename__ = "editor_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)  # the student it acts as
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))  # the service, teacher or admin
    ticket_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)  # the cookie's, once redeemed
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the cookie's end, set when redeemed
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EditorFile(db.Model):
    """One file the editor stores for a student: its settings (``comfy.settings.json``) and saved workflows."""

    __tablename__ = "editor_files"
    __table_args__ = (UniqueConstraint("user_id", "path", name="uq_editor_files_user_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    path: Mapped[str] = mapped_column(String(255))  # relative, validated: "workflows/a.json"
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
