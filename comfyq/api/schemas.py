"""Marshmallow schemas for request bodies, query strings and responses."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..jobs.machine import JobStatus
from .fields import Timestamp
from .webhook_schemas import JobWebhookSchema, WebhookFieldsSchema


TEMPLATE_REF = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}(@[0-9]{1,6})?$",
                               error="must be a template name, optionally with @version (e.g. txt2img@2)")


class TemplateRequestSchema(Schema):
    """A template reference with parameters."""

    template = fields.String(validate=TEMPLATE_REF, metadata={"description": "name or name@version"})
    params = fields.Dict(keys=fields.String(), load_default=dict,
                         error_messages={"invalid": "must be a JSON object of parameter name → value"})
    mode = fields.String(load_default="novice", validate=validate.OneOf(["novice", "expert"]),
                         metadata={"description": "novice requests may set only novice parameters"})
    instance = fields.String(
        load_default=None, validate=validate.Length(min=1, max=32),
        metadata={"description": "pin the job to this instance"})


class JobCreateSchema(TemplateRequestSchema, WebhookFieldsSchema):
    """Body of ``POST /v1/jobs`` and ``POST /v1/jobs:estimate``: a raw workflow or a template."""

    workflow = fields.Dict(
        keys=fields.String(),
        metadata={"description": "a ComfyUI graph: API format (node id → {class_type, inputs}) or the editor's "
                              "saved format (nodes, links, widgets_values), converted with the instances' catalogue"},
        error_messages={"invalid": "must be a JSON object: a ComfyUI graph in API format (node id → node) or "
                                   "as the editor saves it (nodes, links)"})

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: Any) -> None:
        if ("workflow" in data) == ("template" in data):
            raise ValidationError("give either 'template' (with 'params') or a raw 'workflow' (ComfyUI API or "
                                  "saved format), not both and not neither", "_schema")
        if "workflow" in data and data.get("params"):
            raise ValidationError("'params' go with 'template'; a raw workflow carries its own values", "params")


class BatchCreateSchema(TemplateRequestSchema, WebhookFieldsSchema):
    """Body of ``POST /v1/batches``: base params and either variants or a grid."""

    template = fields.String(required=True, validate=TEMPLATE_REF,
                             error_messages={"required": "name the template the batch runs"})
    variants = fields.List(fields.Dict(keys=fields.String()), validate=validate.Length(min=1),
                           metadata={"description": "parameter sets, each overlaid on params"})
    grid = fields.Dict(keys=fields.String(), values=fields.List(fields.Raw(), validate=validate.Length(min=1)),
                       validate=validate.Length(min=1),
                       metadata={"description": "parameter → values; one job per combination"})

    @validates_schema
    def _one_shape(self, data: dict[str, Any], **_: Any) -> None:
        if ("variants" in data) == ("grid" in data):
            raise ValidationError("give either 'variants' (a list of param sets) or 'grid' "
                                  "(param → list of values), not both and not neither", "_schema")


class PageQuerySchema(Schema):
    """The query string of every list: which page, how many items a page."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000),
                          metadata={"description": "1 is the first (newest) page"})
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class PageSchema(Schema):
    """What every page of a list says besides its items."""

    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer(metadata={"description": "items in the whole list; a page past the end is empty"})


class JobListQuerySchema(PageQuerySchema):
    """Query string of ``GET /v1/jobs``."""

    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in JobStatus]))


class OutputSchema(Schema):
    """One stored output file."""

    name = fields.String()
    node_id = fields.String()
    kind = fields.String(metadata={"description": "output or temp (preview)"})
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    expired = fields.Boolean(metadata={"description": "deleted by retention; the record stays"})
    url = fields.String(allow_none=True, metadata={
        "description": "where to download it (a presigned URL with S3 storage); null once expired"})


class JobSchema(Schema):
    """A job as clients see it."""

    id = fields.String()
    status = fields.String()
    template = fields.String(allow_none=True)
    template_version = fields.Integer(allow_none=True)
    params = fields.Dict(allow_none=True)
    workflow_format = fields.String(allow_none=True, metadata={
        "description": "how a raw workflow came in: 'api', or 'saved' (the editor's UI format, converted); "
                       "null for a template job"})
    cost = fields.Integer(allow_none=True)
    soft_time_limit = fields.Float(allow_none=True)
    batch_id = fields.String(allow_none=True)
    queue = fields.String()
    instance = fields.String(allow_none=True)
    worker = fields.String(allow_none=True, metadata={"description": "the Celery worker that ran it last"})
    attempts = fields.Integer(metadata={"description": "runs started on an instance, retries included"})
    instance_requested = fields.String(allow_none=True)
    queue_position = fields.Integer(allow_none=True, metadata={
        "description": "jobs that start before this one: those queued ahead, and for a pending job its "
                       "owner's older pending jobs too; null once it left the queue"})
    estimated_start = Timestamp(allow_none=True, metadata={
        "description": "when it should start, from recent run times per template and instance; null once it "
                       "left the queue, or while no worker of its queue is online or no job succeeded lately"})
    progress = fields.Dict(allow_none=True)
    error = fields.Dict(allow_none=True)
    created_at = Timestamp()
    started_at = Timestamp(allow_none=True)
    finished_at = Timestamp(allow_none=True)
    outputs = fields.List(fields.Nested(OutputSchema))
    webhook = fields.Nested(JobWebhookSchema, allow_none=True, metadata={
        "description": "where this job's events are POSTed, and each delivery with its attempts; null: none"})


class JobPageSchema(PageSchema):
    """A page of jobs, newest first."""

    items = fields.List(fields.Nested(JobSchema))


class InstanceSchema(Schema):
    """One ComfyUI instance as operators see it (never its address)."""

    name = fields.String()
    state = fields.String(metadata={"description": "healthy, unhealthy, stuck, restarting, or unknown (no worker)"})
    worker_online = fields.Boolean()
    reachable = fields.Boolean()
    websocket = fields.Boolean()
    intake = fields.String(allow_none=True, metadata={"description": "open: the worker takes shared work"})
    checked_at = Timestamp(allow_none=True, metadata={"description": "when its worker last checked it"})
    last_seen = Timestamp(allow_none=True, metadata={"description": "last time the instance answered"})
    vram_free = fields.Integer(allow_none=True)
    comfyui_queue = fields.Integer(allow_none=True, metadata={"description": "prompts running or pending there"})
    version = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    stuck_job = fields.String(allow_none=True)
    queue = fields.String()
    queue_depth = fields.Integer()
    running_job = fields.String(allow_none=True)


class InstancesSchema(Schema):
    """All instances and the shared queue."""

    instances = fields.List(fields.Nested(InstanceSchema))
    shared_queue = fields.Dict()


class EstimateSchema(Schema):
    """What a submission would cost and meet."""

    template = fields.String(allow_none=True)
    template_version = fields.Integer(allow_none=True)
    params = fields.Dict(allow_none=True)
    workflow_format = fields.String(allow_none=True, metadata={
        "description": "how a raw workflow came in: 'api' or 'saved' (converted); null for a template"})
    cost = fields.Integer(allow_none=True, metadata={"description": "credits; null for raw workflows"})
    soft_time_limit = fields.Float()
    hard_time_limit = fields.Float()
    queue = fields.String()
    queue_position = fields.Integer(metadata={"description": "jobs that would start before it"})
    estimated_start = Timestamp(allow_none=True, metadata={
        "description": "when it would start, from recent run times; null without an estimate"})
    balance = fields.Integer(allow_none=True, metadata={"description": "your credits now; null if your role is free"})
    instances_idle = fields.List(fields.String(), metadata={"description": "capable instances free right now"})
    guards = fields.Dict()


class BatchSchema(Schema):
    """A batch and its jobs."""

    id = fields.String()
    template = fields.String()
    template_version = fields.Integer()
    created_at = Timestamp()
    status = fields.String()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer()
    jobs = fields.List(fields.Nested(JobSchema))
