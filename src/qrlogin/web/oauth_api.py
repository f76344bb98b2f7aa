"""The OpenID Provider's machine endpoints: discovery, JWKS, token, device authorization,
userinfo, introspection and revocation. Bodies are form-encoded (RFC 6749 §3.2); errors are
``{"error", "error_description"}`` (RFC 6749 §5.2) with ``Cache-Control: no-store``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from qrlogin.oauth.errors import OAuthError
from qrlogin.oauth.provider import OpenIDProvider
from qrlogin.web import deps
from qrlogin.web.lean import hot
from qrlogin.web.responses import Responses, merge

router = APIRouter(tags=["openid"])
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class OAuthErrorBody(BaseModel):
    error: str = Field(description="An error code of RFC 6749 §5.2, RFC 8628 §3.5 or RFC 6750.")
    error_description: str = Field(description="What happened, for a developer.")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = Field(description="Always Bearer.")
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = Field(default=None, description="When the scope has openid.")


class DeviceAuthorizationOut(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int
    qrlogin_events_uri: str = Field(
        description="qrlogin's extension: an SSE stream of the request's state, "
        "authenticated with 'Authorization: Bearer <device_code>'."
    )


class UserInfoOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    sub: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None


class IntrospectionOut(BaseModel):
    active: bool
    client_id: str | None = None
    sub: str | None = None
    scope: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    sid: str | None = None


class JwksOut(BaseModel):
    keys: list[dict[str, Any]]


def oauth_refusal(status: int, description: str) -> Responses:
    return {status: {"model": OAuthErrorBody, "description": description}}


BAD_REQUEST = oauth_refusal(400, "invalid_request, invalid_grant, unsupported_grant_type, …")
BAD_CLIENT = oauth_refusal(401, "invalid_client: unknown client or wrong secret")


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.error == "invalid_client":
        headers["www-authenticate"] = 'Basic realm="qrlogin"'
    if exc.error == "invalid_token":
        headers["www-authenticate"] = (
            f'Bearer error="invalid_token", error_description="{exc.description}"'
        )
    body = OAuthErrorBody(error=exc.error, error_description=exc.description)
    return JSONResponse(body.model_dump(), status_code=exc.status, headers=headers)


def provider(request: Request) -> OpenIDProvider:
    oauth = deps.services(request).oauth
    assert oauth is not None  # the routes are only mounted when it exists
    return oauth


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0: every endpoint and what each supports."""
    return provider(request).metadata()


@router.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata(request: Request) -> dict[str, Any]:
    """RFC 8414 authorization server metadata (the same document)."""
    return provider(request).metadata()


@router.get("/oauth/jwks", response_model=JwksOut)
async def jwks(request: Request) -> dict[str, Any]:
    """The public keys ID tokens are signed with, current and recently retired, by ``kid``."""
    return await provider(request).keys.jwks()


@router.post(
    "/oauth/token",
    response_model=TokenOut,
    response_model_exclude_none=True,
    responses=merge(BAD_REQUEST, BAD_CLIENT),
)
@hot
async def token(
    request: Request,
    grant_type: str | None = Form(None),
    code: str | None = Form(None),
    redirect_uri: str | None = Form(None),
    code_verifier: str | None = Form(None),
    refresh_token: str | None = Form(None),
    device_code: str | None = Form(None),
    scope: str | None = Form(None),
    client_id: str | None = Form(None),
    client_secret: str | None = Form(None),
) -> Response:
    """The token endpoint: ``authorization_code`` (with PKCE), ``refresh_token`` (rotated,
    reuse revokes the grant) and ``urn:ietf:params:oauth:grant-type:device_code`` (RFC 8628
    polling: ``authorization_pending``, ``slow_down``, ``access_denied``, ``expired_token``).
    Clients authenticate with HTTP Basic, in the form, or (public clients) not at all."""
    reply = await provider(request).token(
        await _form(request), request.headers.get("authorization"), deps.device_of(request)
    )
    return _json(reply)


@router.post(
    "/oauth/device_authorization",
    response_model=DeviceAuthorizationOut,
    responses=merge(
        oauth_refusal(400, "invalid_scope, invalid_request"),
        BAD_CLIENT,
        {429: {"description": "rate_limited: too many sign-ins started from this network"}},
    ),
)
@hot
async def device_authorization(
    request: Request,
    client_id: str | None = Form(None),
    client_secret: str | None = Form(None),
    scope: str | None = Form(None),
) -> Response:
    """RFC 8628 §3.1: start a device sign-in. The ``user_code`` is typed at
    ``verification_uri`` (``/link``) on a signed-in device, or ``verification_uri_complete``
    opens its approval directly; then poll the token endpoint every ``interval`` seconds."""
    reply = await provider(request).device_authorization(
        await _form(request), request.headers.get("authorization"), deps.device_of(request)
    )
    return _json(reply)


USERINFO: dict[str, Any] = {
    "response_model": UserInfoOut,
    "response_model_exclude_none": True,
    "responses": oauth_refusal(401, "invalid_token: no, unknown, expired or revoked access token"),
}


@router.get("/oauth/userinfo", operation_id="userinfo", **USERINFO)
async def userinfo(request: Request) -> Response:
    """OpenID Connect UserInfo: ``sub``, and ``email``/``email_verified``/``name`` as the
    grant's scope allows. ``Authorization: Bearer <access_token>``."""
    return _json(await provider(request).userinfo(deps.bearer(request)))


@router.post("/oauth/userinfo", operation_id="userinfo_post", **USERINFO)
async def userinfo_post(request: Request) -> Response:
    """UserInfo by POST (OpenID Connect Core §5.3.1), the same as GET."""
    return _json(await provider(request).userinfo(deps.bearer(request)))


@router.post(
    "/oauth/introspect",
    response_model=IntrospectionOut,
    response_model_exclude_none=True,
    responses=merge(oauth_refusal(400, "invalid_request: no token"), BAD_CLIENT),
)
async def introspect(
    request: Request,
    token: str | None = Form(None),
    token_type_hint: str | None = Form(None),
    client_id: str | None = Form(None),
    client_secret: str | None = Form(None),
) -> Response:
    """RFC 7662: whether a token of the calling (confidential) client is active, and whose.
    A token of another client, or one whose session was revoked, is ``{"active": false}``."""
    reply = await provider(request).introspect(
        await _form(request), request.headers.get("authorization")
    )
    return _json(reply)


@router.post(
    "/oauth/revoke",
    status_code=200,
    responses=merge(
        {200: {"description": "Revoked, or nothing to revoke (RFC 7009 §2.2)"}},
        oauth_refusal(400, "invalid_request: no token"),
        BAD_CLIENT,
    ),
)
async def revoke(
    request: Request,
    token: str | None = Form(None),
    token_type_hint: str | None = Form(None),
    client_id: str | None = Form(None),
    client_secret: str | None = Form(None),
) -> Response:
    """RFC 7009: revoke an access or refresh token; either ends the whole grant (its
    session). Always 200 for a token that is unknown or not the caller's."""
    await provider(request).revoke(
        await _form(request), request.headers.get("authorization"), deps.device_of(request)
    )
    return Response(status_code=200, headers=NO_STORE)
