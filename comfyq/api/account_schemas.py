"""Marshmallow schemas of users, API keys and the caller's account."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..accounts import LEVELS, ROLES


class UserCreateSchema(Schema):
    """A user to create."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    level = fields.String(load_default="novice", validate=validate.OneOf(LEVELS),
                          metadata={"description": "novice accounts may only set novice template params"})
    teacher = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                            metadata={"description": "a student's teacher (a user with the teacher role)"})


class UserSchema(Schema):
    """A user as admins see it."""

    id = fields.String()
    name = fields.String()
    role = fields.String()
    level = fields.String()
    teacher = fields.String(allow_none=True)
    disabled = fields.Boolean()
    created_at = fields.DateTime()


class KeyCreateSchema(Schema):
    """A key to issue."""

    label = fields.String(load_default=None, validate=validate.Length(max=64))


class KeySchema(Schema):
    """An API key, without its secret."""

    id = fields.String(metadata={"description": "the 12 characters after 'cq_'"})
    user = fields.String()
    label = fields.String(allow_none=True)
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)


class IssuedKeySchema(KeySchema):
    """A key just issued: the only time its plain text is shown."""

    key = fields.String(metadata={"description": "send as 'Authorization: Bearer <key>'; not shown again"})


class AccountSchema(Schema):
    """The caller's own account."""

    user = fields.Nested(UserSchema)
    keys = fields.List(fields.Nested(KeySchema))
