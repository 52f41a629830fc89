"""Request parsing: strict JSON (finite numbers, bounded nesting) for every blueprint."""
from __future__ import annotations

import json
import math
from typing import Any, NoReturn

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest import abort
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import MultiDict


def _refuse_constant(name: str) -> NoReturn:
    """Refuse NaN and the infinities, which JSON does not have."""
    raise ValueError(f"{name} is not a JSON number; use a finite number")


def _finite(text: str) -> float:
    """Parse a JSON number that must stay finite."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number; use a finite number")
    return value


class StrictParser(FlaskParser):
    """A webargs parser whose JSON errors are 400s with a reason, never 500s."""

    # An unknown query parameter (a typo of status, say) is a 422 naming it, as an unknown body field is.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def load_form(self, req: flask.Request, schema: Schema) -> Any:
        """Return a form's fields and its files together, so one schema (and one request body) describes both."""
        return self._makeproxy(MultiDict([*req.form.items(multi=True), *req.files.items(multi=True)]), schema)

    def _raw_load_json(self, req: flask.Request) -> Any:
        """Parse a JSON body strictly; malformed bodies become 400s."""
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite)
        except json.JSONDecodeError:
            raise  # webargs turns it into the usual invalid-JSON 400
        except UnicodeDecodeError:
            raise
        except RecursionError:
            self._refuse("nesting is too deep")
        except ValueError as exc:  # NaN/Infinity, 1e999, integers past Python's digit limit
            self._refuse(str(exc))

    @staticmethod
    def _refuse(reason: str) -> NoReturn:
        """Answer 400 with the reason the body was refused."""
        abort(400, message=f"the body is not acceptable JSON: {reason}", errors={"json": [reason]})


class Blueprint(SmorestBlueprint):
    """flask-smorest Blueprint using the strict parser."""

    ARGUMENTS_PARSER = StrictParser()
