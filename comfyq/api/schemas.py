"""Marshmallow schemas for request bodies, query strings and responses."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..jobs import JobStatus


class JobCreateSchema(Schema):
    """Body of ``POST /v1/jobs``."""

    workflow = fields.Dict(
        required=True, keys=fields.String(),
        error_messages={"invalid": "must be a JSON object mapping node ids to nodes "
                                   "(ComfyUI API format: Workflow → Export (API))",
                        "required": "give the ComfyUI workflow in API format under 'workflow'"})
    instance = fields.String(
        load_default=None, validate=validate.Length(min=1, max=32),
        metadata={"description": "pin the job to this instance"})


class JobListQuerySchema(Schema):
    """Query string of ``GET /v1/jobs``."""

    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in JobStatus]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OutputSchema(Schema):
    """One stored output file."""

    name = fields.String()
    node_id = fields.String()
    kind = fields.String(metadata={"description": "output or temp (preview)"})
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    url = fields.String()


class JobSchema(Schema):
    """A job as clients see it."""

    id = fields.String()
    status = fields.String()
    queue = fields.String()
    instance = fields.String(allow_none=True)
    instance_requested = fields.String(allow_none=True)
    queue_position = fields.Integer(allow_none=True)
    progress = fields.Dict(allow_none=True)
    error = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    outputs = fields.List(fields.Nested(OutputSchema))


class JobPageSchema(Schema):
    """A page of jobs, newest first."""

    items = fields.List(fields.Nested(JobSchema))
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


class InstanceSchema(Schema):
    """One ComfyUI instance as operators see it (never its address)."""

    name = fields.String()
    reachable = fields.Boolean()
    worker_online = fields.Boolean()
    checked_at = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)
    queue = fields.String()
    queue_depth = fields.Integer()
    running_job = fields.String(allow_none=True)


class InstancesSchema(Schema):
    """All instances and the shared queue."""

    instances = fields.List(fields.Nested(InstanceSchema))
    shared_queue = fields.Dict()
