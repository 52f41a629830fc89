"""Marshmallow fields shared by every schema of the API."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import fields

from ..db.timestamps import isoformat

# What every timestamp of the API looks like; in the OpenAPI document, so a client (or a test) can check it.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$"
TIMESTAMP_EXAMPLE = "2026-12-04T14:30:52.378047+00:00"


class Timestamp(fields.DateTime):
    """A moment as ISO 8601 in UTC with microseconds and its offset, whatever zone (or none) the value has."""

    def __init__(self, **kwargs: Any) -> None:
        """Make the field, its pattern and an example shown in the OpenAPI document."""
        metadata = {"pattern": TIMESTAMP_PATTERN, "example": TIMESTAMP_EXAMPLE, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        """Write ``value`` in the one format (a naive one is read as UTC)."""
        return None if value is None else isoformat(value)
