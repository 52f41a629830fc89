"""Upload endpoints: send an image or mask once, then name it by id in template params."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from werkzeug.datastructures import FileStorage

from ..db.models import Upload
from ..submission.uploads import create_upload, get_upload
from .auth import current_user
from .fields import Timestamp
from .parser import Blueprint

bp = Blueprint("uploads", __name__, url_prefix="/v1/uploads", description="Images and masks for templates")


class FilePart(fields.Raw):
    """A file part of a multipart body (a plain form field of the same name is refused)."""

    default_error_messages = {"invalid": "send the image as a file part named 'file', not as a text field"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        return value


class UploadFormSchema(Schema):
    """The multipart body: the file and the fields beside it."""

    file = FilePart(required=True, metadata={"type": "string", "format": "binary"})
    kind = fields.String(load_default="image", validate=validate.OneOf(("image", "mask")))
    image = fields.String(load_default=None, metadata={"description": "for a mask: the id of its image's upload"})


class UploadSchema(Schema):
    """An upload as its owner sees it."""

    id = fields.String(metadata={"description": "give it as the value of a template's image or mask param"})
    kind = fields.String()
    sha256 = fields.String()
    name = fields.String(metadata={"description": "the stored file name: what a raw workflow's LoadImage may name "
                                                  "(or give the id)"})
    content_type = fields.String()
    size = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    created_at = Timestamp()


def present_upload(upload: Upload) -> dict[str, Any]:
    """Return an upload as its owner sees it."""
    return {"id": upload.id, "kind": upload.kind, "sha256": upload.sha256, "name": upload.name,
            "content_type": upload.content_type, "size": upload.size, "width": upload.width,
            "height": upload.height, "created_at": upload.created_at}


@bp.route("", methods=["POST"])
@bp.arguments(UploadFormSchema, location="form", content_type="multipart/form-data")
@bp.response(201, UploadSchema)
@bp.alt_response(200, schema=UploadSchema, description="the same bytes were uploaded before: the same upload")
def upload(form: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Upload a PNG, JPEG or WebP image (or a mask of one) as multipart field 'file'; stored once by content."""
    found, new = create_upload(current_user(), form["file"].read(), form["kind"], form["image"])
    return present_upload(found), 201 if new else 200


@bp.route("/<upload_id>")
@bp.response(200, UploadSchema)
def show(upload_id: str) -> dict[str, Any]:
    """Return one of your uploads."""
    return present_upload(get_upload(upload_id, current_user()))
