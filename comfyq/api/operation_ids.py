"""Every operation's ``operationId``: one table, so importers (Dify, client generators) get stable, readable names.

A tool built from the document is named after its operationId; renaming one
breaks every tool imported before, so an entry here changes only with the API.
Each published template's own run operation is named ``run<Name>`` (see
comfyq.api.template_docs), outside this table.
"""
from __future__ import annotations

from typing import Any

from apispec import BasePlugin

OPERATION_IDS: dict[tuple[str, str], str] = {
    ("post", "/v1/jobs"): "submitJob",
    ("get", "/v1/jobs"): "listJobs",
    ("post", "/v1/jobs:estimate"): "estimateJob",
    ("get", "/v1/jobs/{job_id}"): "getJob",
    ("post", "/v1/jobs/{job_id}/cancel"): "cancelJob",
    ("get", "/v1/jobs/{job_id}/outputs/{name}"): "downloadOutput",
    ("get", "/v1/jobs/{job_id}/events"): "streamJobEvents",
    ("get", "/v1/events"): "streamEvents",
    ("post", "/v1/batches"): "createBatch",
    ("get", "/v1/batches/{batch_id}"): "getBatch",
    ("post", "/v1/uploads"): "uploadImage",
    ("get", "/v1/uploads/{upload_id}"): "getUpload",
    ("get", "/v1/templates"): "listTemplates",
    ("get", "/v1/templates/{ref}"): "getTemplate",
    ("post", "/v1/templates/{ref}/runs"): "runTemplate",
    ("get", "/v1/instances"): "listInstances",
    ("get", "/healthz"): "getHealth",
    ("get", "/v1/account"): "getAccount",
    ("get", "/v1/account/webhook"): "getWebhook",
    ("put", "/v1/account/webhook"): "setWebhook",
    ("delete", "/v1/account/webhook"): "deleteWebhook",
    ("post", "/v1/account/webhook/secret"): "rotateWebhookSecret",
    ("post", "/v1/admin/users"): "createUser",
    ("get", "/v1/admin/users"): "listUsers",
    ("post", "/v1/admin/users/{name}/disable"): "disableUser",
    ("post", "/v1/admin/users/{name}/enable"): "enableUser",
    ("post", "/v1/admin/users/{name}/keys"): "issueKey",
    ("post", "/v1/admin/keys/{key_id}/revoke"): "revokeKey",
    ("post", "/v1/admin/users/{name}/credits"): "changeCredits",
    ("get", "/v1/admin/users/{name}/ledger"): "getLedger",
    ("patch", "/v1/admin/users/{name}/limits"): "setLimits",
    ("post", "/v1/editor-sessions"): "createEditorSession",
    ("get", "/v1/editor-sessions"): "listEditorSessions",
    ("delete", "/v1/editor-sessions/{session_id}"): "revokeEditorSession",
}


class OperationIdsPlugin(BasePlugin):
    """Name each operation from OPERATION_IDS (an operation that already has an id keeps it)."""

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        """Set the operationId of every operation of ``path`` that the table names."""
        for method, operation in (operations or {}).items():
            known = OPERATION_IDS.get((method, path or ""))
            if known and "operationId" not in operation:
                operation["operationId"] = known
