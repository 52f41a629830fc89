"""Turn a request into a runnable plan: the graph, its queue, cost and time limit.

A request is a raw workflow (validated, checked against the node policy and the
instances' catalogues, its images resolved to the sender's uploads) or a
template reference with parameters (filled, guarded, costed). Nothing is
written here except staged input images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from ..workflows import published as catalogue
from ..config.settings import SHARED_QUEUE, Instance, capability_queue
from ..errors import InvalidRequest, NotFound, TooLarge, Unavailable
from ..db.extensions import get_redis
from ..workflows.file_inputs import named_files, with_stored_names
from ..storage.inputs import STAGED, StagedImage, decode_data_url
from ..db.models import User
from ..workflows.safety import check_nodes
from .uploads import UPLOAD_ID, check_pair, checked, create_upload, get_upload, stored_names, upload_named
from ..workflows.saved_format import API, SAVED, to_api, workflow_format
from ..workflows.validation import validate_workflow


@dataclass
class Plan:
    """Everything needed to create and enqueue one job."""

    queue: str
    workflow: dict[str, Any]
    instance: str | None = None
    template: str | None = None
    template_version: int | None = None
    params: dict[str, Any] | None = None
    cost: int | None = None
    soft_time_limit: float = 0.0
    inputs: list[str] = field(default_factory=list)
    guard_failures: list[str] = field(default_factory=list)
    candidates: list[Instance] = field(default_factory=list)
    workflow_format: str | None = None  # a raw workflow's: "api" or "saved"

    @property
    def hard_time_limit(self) -> float:
        """Return the limit at which the worker child is killed."""
        return self.soft_time_limit + current_app.config["TIME_LIMIT_GRACE"]


def route(instance: str | None, requires: tuple[str, ...] = ()) -> tuple[str, list[Instance]]:
    """Return the queue for a job and the instances that may run it."""
    instances: dict[str, Instance] = current_app.config["INSTANCES"]
    need = set(requires)
    if instance is not None:
        if instance not in instances:
            known = ", ".join(sorted(instances)) or "none configured"
            raise InvalidRequest(f"unknown instance {instance!r}; known instances: {known}",
                                 {"json": {"instance": [f"not one of: {known}"]}})
        lacking = need - instances[instance].capabilities
        if lacking:
            raise InvalidRequest(f"instance {instance!r} lacks {', '.join(sorted(lacking))}, which this "
                                 "template requires", {"json": {"instance": ["lacks a required capability"]}})
        return instances[instance].queue, [instances[instance]]
    if need:
        capable = [i for i in instances.values() if need <= i.capabilities]
        if not capable:
            raise InvalidRequest(f"no instance offers {', '.join(sorted(need))}, which this template requires",
                                 {"json": {"template": ["no capable instance"]}})
        return capability_queue(need), capable
    return SHARED_QUEUE, list(instances.values())


def _catalogues(instances: list[Instance]) -> dict[str, catalogue.Catalogue]:
    """Return the published catalogues of ``instances`` (those known so far)."""
    r, ttl = get_redis(), current_app.config["CATALOGUE_TTL"]
    try:
        found = {inst.name: catalogue.load(r, inst.name, ttl) for inst in instances}
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable ({exc}); nothing was queued, try again") from exc
    return {name: cat for name, cat in found.items() if cat is not None}


def converted(workflow: dict[str, Any], candidates: list[Instance]) -> dict[str, Any]:
    """Return a saved-format graph in API format, its widgets named by the candidates' published catalogues."""
    catalogues = _catalogues(candidates)
    if not catalogues:
        raise Unavailable("no instance has published its node catalogue yet, and naming a saved graph's widget "
                          "values needs one; nothing was queued: try again shortly, or send the API format")
    return to_api(workflow, catalogues, current_app.config["MAX_WORKFLOW_NODES"])


def plan_raw(workflow: dict[str, Any], instance: str | None, owner: User) -> Plan:
    """Check a raw workflow of ``owner`` and plan it at the flat raw-job cost and the default time limit."""
    config = current_app.config
    queue, candidates = route(instance)
    came_as = workflow_format(workflow)
    if came_as == SAVED:
        workflow = converted(workflow, candidates)
    # Structure first, so a malformed graph gets its 422 even when Redis is down.
    validate_workflow(workflow, {}, config["MAX_WORKFLOW_NODES"])
    check_nodes(workflow, config["NODE_BLOCKLIST"], config["NODE_ALLOWLIST"])
    catalogues = _catalogues(candidates)
    named = named_files(workflow, catalogues)
    stored = stored_names({value for _, _, value in named if isinstance(value, str)}, owner)
    validate_workflow(workflow, catalogues, config["MAX_WORKFLOW_NODES"], uploads=stored)
    inputs = sorted({stored[value] for _, _, value in named if isinstance(value, str) and value in stored})
    return Plan(queue, with_stored_names(workflow, catalogues, stored), instance, cost=config["RAW_JOB_COST"],
                soft_time_limit=config["SOFT_TIME_LIMIT"], inputs=inputs, candidates=candidates,
                workflow_format=came_as or API)


def image_param(value: object, param: str, kind: str, owner: User, store: bool = True) -> StagedImage:
    """Return the stored image a param names: one of ``owner``'s upload ids or stored names, or a data URL.

    ``store=False`` (an estimate) checks a data URL's image as an upload would, but keeps nothing.
    """
    try:
        if isinstance(value, str) and UPLOAD_ID.fullmatch(value):
            upload = get_upload(value, owner)
        elif isinstance(value, str) and STAGED.fullmatch(value):
            upload = upload_named(value, kind, owner)
        elif not store:
            return checked(decode_data_url(value))
        else:
            upload = create_upload(owner, decode_data_url(value), kind)[0]
    except (InvalidRequest, NotFound, TooLarge) as exc:
        status = TooLarge if isinstance(exc, TooLarge) else InvalidRequest  # a missing upload is a bad param here
        raise status(f"params.{param}: {exc.message}", {"json": {"params": {param: [exc.message]}}}) from None
    if upload.kind != kind:
        raise InvalidRequest(f"params.{param}: upload {upload.id} is a {upload.kind}; this param takes a {kind}",
                             {"json": {"params": {param: ["wrong kind of upload"]}}})
    return StagedImage(upload.name, upload.width, upload.height)


def plan_template(ref: str, params: dict[str, Any], mode: str, instance: str | None, owner: User,
                  check_guards: bool = True, store: bool = True) -> Plan:
    """Fill a template with parameters (staging input images, or taking ``owner``'s uploads) and plan it."""
    config = current_app.config
    template = current_app.extensions["templates"].get(ref)
    params, inputs, measured = dict(params), [], {}
    images: dict[str, StagedImage] = {}
    for name, param in template.params.items():
        if param.type in ("image", "mask") and params.get(name) is not None:
            staged = images[param.type] = image_param(params[name], name, param.type, owner, store)
            params[name] = staged.name
            inputs.append(staged.name)
            measured.update({f"{name}_width": staged.width, f"{name}_height": staged.height})
    if len(images) == 2:
        check_pair(images["image"], images["mask"], {"json": {"params": {"mask": ["size differs from the image"]}}},
                   "params.mask: ")
    resolved = template.resolve(params, mode, check_guards=check_guards,
                                measured={k: v for k, v in measured.items() if k in template.params})
    # A string param may name a file: the graph loads only the images staged above, and saves under plain prefixes.
    validate_workflow(resolved.workflow, {}, config["MAX_WORKFLOW_NODES"], uploads=inputs)
    queue, candidates = route(instance, template.requires)
    return Plan(queue, resolved.workflow, instance, template.name, template.version, resolved.params,
                resolved.cost, min(resolved.soft_time_limit, config["MAX_TIME_LIMIT"]), inputs,
                resolved.guard_failures, candidates)


def plan_job(body: dict[str, Any], owner: User, estimate: bool = False) -> Plan:
    """Plan a job of ``owner`` from a request body of either kind (an estimate: guards unchecked, nothing stored)."""
    if body.get("template"):
        return plan_template(body["template"], body.get("params") or {}, body.get("mode") or "novice",
                             body.get("instance"), owner, check_guards=not estimate, store=not estimate)
    return plan_raw(body["workflow"], body.get("instance"), owner)
