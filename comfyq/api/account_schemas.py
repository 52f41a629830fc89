"""Marshmallow schemas of users, API keys, credits, limits and the caller's account."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..accounts.users import LEVELS, ROLES, USER_NAME, USER_NAME_RULE
from .fields import Timestamp
from .schemas import PageSchema


class UserCreateSchema(Schema):
    """A user to create."""

    name = fields.String(required=True, validate=validate.Regexp(USER_NAME, error=USER_NAME_RULE))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    level = fields.String(load_default="novice", validate=validate.OneOf(LEVELS),
                          metadata={"description": "novice accounts may only set novice template params"})
    teacher = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                            metadata={"description": "a student's teacher (a user with the teacher role)"})
    credits = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=10**9),
                             metadata={"description": "credits granted at creation"})
    limits = fields.Nested(lambda: LimitsSchema(), load_default=None,
                           metadata={"description": "this user's own limits (otherwise the role's or global)"})


class LimitsSchema(Schema):
    """A user's own limits; null clears one, an absent key leaves it as it is."""

    max_running = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=10**6),
                                 metadata={"description": "jobs queued or running at once; more wait as pending"})
    max_waiting = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0, max=10**7),
                                 metadata={"description": "jobs pending or queued at once (0: no limit)"})
    rate_per_minute = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0, max=10**6),
                                     metadata={"description": "submissions per minute (0: no limit)"})
    weight = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=1000),
                            metadata={"description": "fair-share weight: GPU slots held per one of a weight-1 user"})


class LimitsChangeSchema(LimitsSchema):
    """Body of ``PATCH /v1/admin/users/NAME/limits``: at least one limit, or nothing would change."""

    class Meta:
        """An empty body is refused; the OpenAPI document says so too."""

        min_properties = 1

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one of max_running, max_waiting, rate_per_minute, weight (null clears "
                                  "one); an empty body would change nothing", "_schema")


class CreditChangeSchema(Schema):
    """Credits to grant, or an adjustment of either sign."""

    amount = fields.Integer(strict=True, required=True, validate=validate.Range(min=-10**9, max=10**9))
    kind = fields.String(load_default="grant", validate=validate.OneOf(("grant", "adjustment")))
    note = fields.String(load_default=None, validate=validate.Length(max=255))


class LedgerEntrySchema(Schema):
    """One change of a balance."""

    id = fields.Integer()
    kind = fields.String(metadata={"description": "grant, debit, refund or adjustment"})
    amount = fields.Integer(metadata={"description": "signed: debits are negative"})
    job_id = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    created_at = Timestamp()


class LedgerPageSchema(PageSchema):
    """A page of a user's ledger, newest first."""

    items = fields.List(fields.Nested(LedgerEntrySchema))


class UserSchema(Schema):
    """A user as admins see it."""

    id = fields.String()
    name = fields.String()
    role = fields.String()
    level = fields.String()
    teacher = fields.String(allow_none=True)
    disabled = fields.Boolean()
    created_at = Timestamp()
    balance = fields.Integer()
    limits = fields.Dict(metadata={"description": "this user's own limits; null ones fall back to the role's"})


class KeyCreateSchema(Schema):
    """A key to issue."""

    label = fields.String(load_default=None, validate=validate.Length(max=64))


class KeySchema(Schema):
    """An API key, without its secret."""

    id = fields.String(metadata={"description": "the 12 characters after 'cq_'"})
    user = fields.String()
    label = fields.String(allow_none=True)
    created_at = Timestamp()
    revoked_at = Timestamp(allow_none=True)


class IssuedKeySchema(KeySchema):
    """A key just issued: the only time its plain text is shown."""

    key = fields.String(metadata={"description": "send as 'Authorization: Bearer <key>'; not shown again"})


class EffectiveLimitsSchema(Schema):
    """The limits that apply, and where each comes from."""

    max_running = fields.Integer()
    max_waiting = fields.Integer()
    rate_per_minute = fields.Integer()
    weight = fields.Integer()
    sources = fields.Dict(metadata={"description": "user, role or global, per limit"})


class AccountSchema(Schema):
    """The caller's own account."""

    user = fields.Nested(UserSchema)
    keys = fields.List(fields.Nested(KeySchema))
    balance = fields.Integer()
    metered = fields.Boolean(metadata={"description": "false for roles whose jobs cost nothing"})
    limits = fields.Nested(EffectiveLimitsSchema)
    usage = fields.Dict(metadata={"description": "your jobs pending, queued and running now"})
    ledger = fields.List(fields.Nested(LedgerEntrySchema), metadata={"description": "the latest 20 entries"})
