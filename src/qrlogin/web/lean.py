"""The lean path: the hot endpoints of a sign-in served without FastAPI's per-request
machinery, from the very routes that declare them.

A creation spent about 40 % of its time in the layers between the server and the endpoint
function (issue 15): Starlette's exception middleware, the exit-stack middleware, the router
trying route after route, the route's request/response wrapper, dependency solving and the
response wrapper again. For the endpoints that every sign-in calls (``@hot`` below: create,
scan, approve, deny, link, exchange; RFC 8628's device authorization and token polls;
``/healthz``) ``Lean``, a middleware just inside ``Edge``, does only what those endpoints
need, with FastAPI's own parts where they matter:

- the route is the ``APIRoute`` FastAPI registered: its path regex, its endpoint function,
  its body field (validated with FastAPI's own ``ModelField.validate``; an urlencoded form
  parsed by Starlette and validated by FastAPI's ``request_body_to_args``), its response field
  (validated and dumped to JSON as FastAPI does), its status code. So the OpenAPI entry, the
  FastAPI route and the lean path are one declaration, and there is no second copy of a
  route to drift;
- the app's exception handlers answer the endpoint's exceptions, looked up by class as
  Starlette's exception middleware does;
- anything out of the ordinary — a body that is not plain JSON, fails validation or is
  missing, a HEAD, a method the route does not take — goes to the FastAPI stack as it
  would have, with the body already read handed on; so every refusal of a malformed
  request is FastAPI's, byte for byte.

Only endpoints FastAPI would call with nothing but the request, the sub-response, path
parameters and one JSON body or form fields qualify; ``Lean`` refuses any other at
start-up.
"""

from __future__ import annotations

import email.message
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from fastapi import params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import request_body_to_args
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrlogin.web.middleware import route_path

F = TypeVar("F", bound=Callable[..., Any])
Handler = Callable[[Request, Exception], Awaitable[Response]]
HOT = "__qrlogin_hot__"
FALLBACK = object()  # the request goes to the FastAPI stack instead
FORM = "application/x-www-form-urlencoded"


def hot(endpoint: F) -> F:
    """Mark a route's endpoint for the lean path (put it under the route decorator)."""
    setattr(endpoint, HOT, True)
    return endpoint


def _is_json(content_type: str) -> bool:
    """What FastAPI reads as a JSON body: ``application/json`` or ``application/*+json``."""
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class LeanRoute:
    """One hot ``APIRoute`` and how to call its endpoint."""

    __slots__ = (
        "body",
        "endpoint",
        "form",
        "methods",
        "path_params",
        "regex",
        "request_param",
        "response_param",
        "route",
    )

    def __init__(self, route: APIRoute) -> None:
        dep = route.dependant
        refused = [
            what
            for what, present in (
                ("dependencies", dep.dependencies),
                ("query parameters", dep.query_params),
                ("header parameters", dep.header_params),
                ("cookie parameters", dep.cookie_params),
                ("several body fields", len(dep.body_params) > 1 and not _is_form(route)),
                ("background tasks", dep.background_tasks_param_name),
                ("a sync endpoint", not inspect.iscoroutinefunction(route.endpoint)),
                ("a response class of its own", not _default_response_class(route)),
                ("a non-string path parameter", _typed_path_params(route)),
            )
            if present
        ]
        if refused:
            raise ValueError(f"{route.path} cannot take the lean path: {', '.join(refused)}")
        self.route = route
        self.regex: re.Pattern[str] = route.path_regex
        self.methods = frozenset(route.methods or ())
        self.endpoint: Callable[..., Awaitable[Any]] = route.endpoint
        self.body = route.body_field
        self.form = _is_form(route)
        self.path_params = tuple(p.name for p in dep.path_params)
        self.request_param = dep.request_param_name
        self.response_param = dep.response_param_name

    def parse_body(self, raw: bytes, content_type: str | None) -> Any:
        """The endpoint's body argument, validated as FastAPI validates it, or
        ``FALLBACK`` for anything FastAPI should answer itself."""
        field = self.body
        if field is None:
            return None
        if not raw:
            return FALLBACK if field.field_info.is_required() else None
        if content_type is None or not _is_json(content_type):
            return FALLBACK
        try:
            decoded = json.loads(raw)
        except Exception:  # not JSON, not UTF-8, nested past the decoder's limit: FastAPI's
            return FALLBACK
        value, errors = field.validate(decoded, {}, loc=("body",))
        return FALLBACK if errors else value

    async def parse_form(self, request: Request) -> dict[str, Any] | object:
        """A form route's arguments from an ``application/x-www-form-urlencoded`` body,
        parsed by Starlette and validated by FastAPI's own ``request_body_to_args`` as its
        route handler does, or ``FALLBACK`` (multipart and every other body, a form that
        does not parse or validate). Starlette's urlencoded parser has no limits to apply,
        so nothing here differs from the FastAPI path."""
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != FORM:
            return FALLBACK
        try:
            form = await request.form()
        except Exception:
            return FALLBACK
        values, errors = await request_body_to_args(
            self.route.dependant.body_params, form, self.route._embed_body_fields
        )
        return FALLBACK if errors else values

    async def respond(self, request: Request, kwargs: dict[str, Any]) -> Response:
        """Call the endpoint and make its response as FastAPI's route handler does."""
        route = self.route
        sub = Response()
        del sub.headers["content-length"]
        sub.status_code = None  # type: ignore[assignment]  # FastAPI's "not set"
        if self.request_param:
            kwargs[self.request_param] = request
        if self.response_param:
            kwargs[self.response_param] = sub
        raw = await self.endpoint(**kwargs)
        if isinstance(raw, Response):
            return raw
        status = sub.status_code or route.status_code or 200
        field = route.response_field
        if field is None:
            content = json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()
        else:
            value, errors = field.validate(raw, {}, loc=("response",))
            if errors:  # our own reply does not fit its model: a bug, the 500 of Edge
                raise ValueError(f"{route.path} replied outside its response model: {errors}")
            content = field.serialize_json(
                value,
                include=route.response_model_include,
                exclude=route.response_model_exclude,
                by_alias=route.response_model_by_alias,
                exclude_unset=route.response_model_exclude_unset,
                exclude_defaults=route.response_model_exclude_defaults,
                exclude_none=route.response_model_exclude_none,
            )
        response = Response(content, status_code=status, media_type="application/json")
        response.headers.raw.extend(sub.headers.raw)
        return response


def _is_form(route: APIRoute) -> bool:
    return route.body_field is not None and isinstance(route.body_field.field_info, params.Form)


def _default_response_class(route: APIRoute) -> bool:
    return isinstance(route.response_class, DefaultPlaceholder)


def _typed_path_params(route: APIRoute) -> bool:
    return any(not isinstance(c, StringConvertor) for c in route.param_convertors.values())


def hot_routes(routes: Iterable[Any]) -> list[LeanRoute]:
    """The lean routes among ``routes``: the ``APIRoute`` s whose endpoint is ``@hot``."""
    return [
        LeanRoute(r) for r in routes if isinstance(r, APIRoute) and getattr(r.endpoint, HOT, False)
    ]


class Lean:
    """The middleware serving the hot routes (module docstring); every other request, and
    every unusual one, goes on to ``app`` (the FastAPI stack) untouched."""

    def __init__(self, app: ASGIApp, *, routes: list[LeanRoute], prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix
        # routes without path parameters by (method, path); the others tried in turn, for
        # paths under ``prefix`` only
        self.static: dict[tuple[str, str], LeanRoute] = {}
        self.by_method: dict[str, list[LeanRoute]] = {}
        for lean in routes:
            for method in lean.methods:
                if not lean.path_params:
                    self.static[(method, lean.route.path)] = lean
                elif lean.route.path.startswith(prefix):
                    self.by_method.setdefault(method, []).append(lean)
                else:
                    raise ValueError(
                        f"{lean.route.path}: lean routes with parameters live under {prefix}"
                    )
        self._handlers: dict[type[BaseException], Handler] | None = None

    def _match(self, scope: Scope) -> tuple[LeanRoute, dict[str, str]] | None:
        method: str = scope["method"]
        path = route_path(scope)
        static = self.static.get((method, path))
        if static is not None:
            return static, {}
        candidates = self.by_method.get(method)
        if candidates is None or not path.startswith(self.prefix):
            return None
        for lean in candidates:
            found = lean.regex.match(path)
            if found is not None:
                return lean, found.groupdict()
        return None

    def handler_for(self, scope: Scope, exc: Exception) -> Handler | None:
        """The app's handler of ``exc``, looked up along its class's MRO as Starlette's
        exception middleware does (the handlers of ``Exception`` and 500 belong to the
        outermost layer, not to it)."""
        if self._handlers is None:
            registered: Mapping[Any, Any] = scope["app"].exception_handlers
            self._handlers = {
                k: v for k, v in registered.items() if isinstance(k, type) and k is not Exception
            }
        for cls in type(exc).__mro__:
            found = self._handlers.get(cls)
            if found is not None:
                return found
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self._match(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        lean, params = matched
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            try:
                raw = await request.body()
            except Exception as exc:  # as FastAPI: a body that cannot be read is a 400
                raise HTTPException(400, "There was an error parsing the body") from exc
            kwargs: dict[str, Any] = dict(params)
            if lean.form:
                form = await lean.parse_form(request) if raw else FALLBACK
                if isinstance(form, dict):
                    kwargs.update(form)
                body: Any = form
            else:
                body = lean.parse_body(raw, request.headers.get("content-type"))
                if lean.body is not None:
                    kwargs[lean.body.name] = body
            if body is FALLBACK:
                await self.app(scope, _replay(raw, receive), send)
                return
            response = await lean.respond(request, kwargs)
        except Exception as exc:
            handle = self.handler_for(scope, exc)
            if handle is None:
                raise  # Edge's last resort
            response = await handle(request, exc)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then what the client sends next
    (its disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
