"""Workflow templates: versioned ComfyUI graphs filled from typed params.

Layout: every directory under ``templates_wf/`` holding a ``spec.yaml`` is one
template version, with its graph in ComfyUI API format in ``workflow.json``
beside it. The directory is named ``<name>`` or ``<name>@<version>`` and must
agree with the spec; a request naming no version gets the newest.

The spec declares ``params`` (type, default, bounds, choices, max_length,
multiple_of, mode novice|expert (default expert), targets ``node_id.input_name``), ``node_labels``,
and formulas over the params (simpleeval, never ``eval``): ``cost`` (credits,
rounded up), ``guards`` (``check`` + the ``message`` users see) and
``time_limit`` (soft limit, seconds); ``requires`` lists capabilities such as
``sdxl``. Everything is checked when the store loads, so a broken template
stops start-up with its file and reason, never a user's request.

Measured params: an ``int`` param named ``<image>_width`` or ``<image>_height``,
where ``<image>`` is an ``image`` or ``mask`` param, holds the size of the
uploaded image. The API measures the staged file and passes the values to
``Template.resolve(..., measured={...})``; they override whatever the request
says and need no expert mode. Such params are the only ones that may have no
targets: they exist for formulas (cost, guards, time limit). Give them a
default so the formulas can be checked at load time.
"""
from __future__ import annotations

from .sim_catalogue import simulator_catalogue
from .errors import GuardFailed, ParamsInvalid, TemplateError, UnknownTemplate
from .params import Param
from .store import TemplateStore, check_templates
from .template import Guard, Resolved, Template

__all__ = [
    "Guard", "GuardFailed", "Param", "ParamsInvalid", "Resolved", "Template", "TemplateError", "TemplateStore",
    "UnknownTemplate", "check_templates", "simulator_catalogue",
]
