"""schemathesis against the OpenAPI document: no server error, no answer that contradicts the document.

Every operation of the document is run (jobs, estimates, outputs, both event
streams, batches, uploads, templates, instances, health, account, webhook
settings, admin users, keys, credits, ledger and limits). The app runs in this
process on a real Redis and a SQLite file, seeded with one of everything
(tests.integration.seeded); path parameters name those, so requests reach a
real succeeded job, its PNG output, a queued job to cancel, a batch, an upload
and a student's ledger and key. Event streams end after their opening here
(no ASGI server holds them), so they are checked like any answer.

Left out: ``positive_data_acceptance``, which expects every schema-valid body
to be accepted; the API also checks what JSON Schema cannot say (that a
template exists and takes those params, that an instance exists, that a grant
is positive), and answers 422 saying so.

About 1,600 requests, deterministic (derandomized Hypothesis, schemathesis'
coverage phase); run alone with ``pytest tests/integration/test_openapi_conformance.py``.
"""
from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (allow_header_conformance, content_type_conformance, ignored_auth,
                                               missing_required_header, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance, unsupported_method)

from tests.integration.seeded import Seeded, seed

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, unsupported_method, allow_header_conformance, negative_data_rejection,
          missing_required_header, ignored_auth]


@pytest.fixture(scope="module")
def seeded(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    # A Redis database of its own: the stack's workers (database 0) must not take these jobs.
    return seed(redis_url.rsplit("/", 1)[0] + "/7", tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def api_schema(seeded: Seeded) -> Any:
    config = schemathesis.Config.from_dict({
        "parameters": {"path.job_id": seeded.job_id, "path.batch_id": seeded.batch_id,
                       "path.upload_id": seeded.upload_id, "path.key_id": seeded.user_key_id, "path.ref": "txt2img"},
        "operations": [
            {"include-path-regex": "^/v1/admin/users/", "parameters": {"path.name": seeded.user}},
            {"include-path": "/v1/jobs/{job_id}/outputs/{name}", "parameters": {"path.name": seeded.output}},
            {"include-path": "/v1/jobs/{job_id}/cancel", "parameters": {"path.job_id": seeded.queued_job_id}},
        ],
    })
    return schemathesis.openapi.from_wsgi("/openapi.json", seeded.app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_as_documented(case: schemathesis.Case, seeded: Seeded) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded.admin_key}"}, checks=CHECKS)
