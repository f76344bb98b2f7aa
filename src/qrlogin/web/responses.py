"""What the API answers besides success, for the OpenAPI document: each refusal a route can
give is declared with the route (``responses=``), from these pieces, so /openapi.json says what
the app does (docs/api.md has the table of error codes).

FastAPI would also promise a 422 on every operation with parameters or a body; the app answers
a malformed request with 400 ``invalid_request`` instead (``app.py``), so ``openapi_schema``
takes the 422 and its models out and declares that 400 in its place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.routing import compile_path

from qrlogin.web.schemas import ErrorBody

Responses = dict[int | str, dict[str, Any]]


def refusal(status: int, description: str) -> Responses:
    return {status: {"model": ErrorBody, "description": description}}


INVALID_REQUEST = "invalid_request: the body or the parameters are malformed"
NOT_SIGNED_IN = refusal(401, "not_signed_in: no live session (bearer token or cookie)")
INVALID_SECRET = refusal(401, "invalid_secret: no or wrong requester secret, or no such request")
CSRF = refusal(
    403, "csrf_failed: a cookie-authenticated write without the header 'Qrlogin-Client: browser'"
)
RATE_LIMITED = refusal(429, "rate_limited (or account_locked): wait for the seconds in Retry-After")
UNAVAILABLE = refusal(503, "unavailable: the database did not answer; nothing was changed")

# who may call: an operation that can refuse with not_signed_in needs a session, one that can
# refuse with invalid_secret the requester secret; each by bearer token or by its cookie
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "session": {"type": "http", "scheme": "bearer", "description": "An access token."},
    "session_cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "qrl_session",
        "description": "Browsers: the session cookie (__Host-qrl_session over https).",
    },
    "requester_secret": {
        "type": "http",
        "scheme": "bearer",
        "description": "The requester secret the create reply holds.",
    },
    "requester_cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "qrl_requester",
        "description": "Browsers: the requester cookie (__Host-qrl_requester over https).",
    },
}
_SECURITY_BY_REFUSAL: dict[str, list[dict[str, list[str]]]] = {
    "not_signed_in": [{"session": []}, {"session_cookie": []}],
    "invalid_secret": [{"requester_secret": []}, {"requester_cookie": []}],
}


_STREAM_MODELS: dict[str, type[BaseModel]] = {}  # what event-stream schemas refer to


def event_stream(events: dict[str, type[BaseModel]]) -> Responses:
    """A 200 ``text/event-stream`` whose events are named ``events``' keys, each event's
    ``data:`` the JSON of its model (the same model as the JSON replies, ``sse.sse_event``)."""
    variants = []
    for name, model in events.items():
        _STREAM_MODELS[model.__name__] = model
        data = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
        variants.append(
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {"event": {"const": name}, "data": data, "id": {"type": "string"}},
            }
        )
    schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
    return {200: {"content": {"text/event-stream": {"schema": schema}}}}


def merge(*parts: Responses) -> Responses:
    """The union of ``parts``; a status declared twice keeps both descriptions."""
    merged: Responses = {}
    for part in parts:
        for status, answer in part.items():
            if status in merged and "description" in merged[status]:
                both = f"{merged[status]['description']}; or {answer['description']}"
                merged[status] = {**merged[status], "description": both}
            else:
                merged[status] = dict(answer)
    return merged


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """For a 405: the methods the OpenAPI document lists under the first path template that
    ``path`` matches (templates in the order routes are matched), so ``Allow`` and the
    document agree. Starlette's own ``Allow`` names the methods of the first matching route
    only: ``GET`` without the ``DELETE`` beside it on a login request. Empty for paths the
    document leaves out (the pages), which keep Starlette's."""
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            return sorted(method.upper() for method in operations)
    return []


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once): FastAPI's, with 400 ``invalid_request`` where
    FastAPI put its 422."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            unauthorized = answers.get("401", {}).get("description", "")
            for code, security in _SECURITY_BY_REFUSAL.items():
                if unauthorized.startswith(code):
                    operation["security"] = security
            if answers.pop("422", None) is None:
                continue
            if "400" in answers:
                declared = answers["400"].get("description", "")
                if INVALID_REQUEST not in declared:
                    answers["400"]["description"] = f"{declared}; or {INVALID_REQUEST}"
            else:
                content = {"application/json": {"schema": error_ref}}
                answers["400"] = {"description": INVALID_REQUEST, "content": content}
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    models = schema["components"].setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        models.pop(unused, None)
    for name, model in _STREAM_MODELS.items():
        if name not in models:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for inner, inner_schema in found.pop("$defs", {}).items():
                models.setdefault(inner, inner_schema)
            models[name] = found
    app.openapi_schema = schema
    return schema
