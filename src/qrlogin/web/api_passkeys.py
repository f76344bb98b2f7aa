"""Passkeys (WebAuthn): the signed-in user's own (add, list, rename, remove), sign-in with one
(alone, or as the second factor of an email sign-in), and the step-up before an approval.

Every ceremony is two calls: ``…/options`` answers the options for
``navigator.credentials.create()`` / ``get()`` (``PublicKeyCredentialCreationOptionsJSON`` /
``PublicKeyCredentialRequestOptionsJSON``, WebAuthn Level 3 §5.4, §5.5) and a ``token``; the
second call sends the credential (``PublicKeyCredential.toJSON()``) with that token. The
token is single use, lives 5 minutes and works only from the browser that asked (its
``qrl_browser`` cookie, which a caller without one gets with the options; else its address).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from qrlogin.accounts.factors import binding
from qrlogin.accounts.passkeys import NAME_LENGTH, VERIFY
from qrlogin.core.errors import PasskeyRefused
from qrlogin.sessions.service import Authenticated
from qrlogin.store.records import Passkey
from qrlogin.web import deps, security
from qrlogin.web.responses import CSRF, NOT_SIGNED_IN, RATE_LIMITED, merge, refusal
from qrlogin.web.schemas import SessionOut
from qrlogin.web.sessions import session_response

router = APIRouter(prefix="/api/v1", tags=["factors"])

Signed = Annotated[Authenticated, Depends(deps.require_session)]
Writer = Annotated[Authenticated, Depends(deps.require_writer)]

REFUSED = refusal(
    400,
    "passkey_refused: one reply for every failure (challenge unknown, used, expired or "
    "another browser's; wrong origin or RP ID; bad signature; unknown credential; a sign "
    "counter that went back)",
)
NO_SUCH_PASSKEY = refusal(404, "not_found: no such passkey of this account")
LAST_FACTOR = refusal(409, "last_factor: the account requires a second factor and this is its last")
MFA = refusal(
    401, "invalid_mfa_token: the mfa token is unknown, used, expired or another browser's"
)
Credential = Field(
    description="The credential as PublicKeyCredential.toJSON() gives it (WebAuthn L3 §5.1)."
)
Token = Field(min_length=1, max_length=200, description="The token the options came with.")


class PasskeyOptions(BaseModel):
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptionsJSON (or …RequestOptionsJSON for a "
        "sign-in): give it to PublicKeyCredential.parseCreationOptionsFromJSON (…Request…)."
    )
    token: str = Field(description="Send it back with the credential; single use, 5 minutes.")


class PasskeyAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any] = Credential
    token: str = Token
    name: str | None = Field(default=None, max_length=NAME_LENGTH)


class PasskeyRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=NAME_LENGTH)


class PasskeySignInOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mfa_token: str | None = Field(
        default=None,
        max_length=200,
        description="Second factor of an email sign-in: options for that account's passkeys.",
    )


class PasskeySignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any] = Credential
    token: str = Token
    mfa_token: str | None = Field(
        default=None,
        max_length=200,
        description="Finishes an email sign-in waiting for its second factor.",
    )


class PasskeyStepUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any] = Credential
    token: str = Token


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: float
    last_used_at: float | None
    synced: bool = Field(
        description="May be synced to the owner's other devices (backup eligible)."
    )
    backed_up: bool = Field(description="Is backed up (synced) now.")

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyOut:
        return cls(
            id=passkey.id,
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
            synced=bool(passkey.backup_eligible),
            backed_up=bool(passkey.backup_state),
        )


class PasskeyList(BaseModel):
    passkeys: list[PasskeyOut]


def _options_reply(request: Request, options: dict[str, Any], token: str) -> JSONResponse:
    return JSONResponse(PasskeyOptions(options=options, token=token).model_dump(mode="json"))


def _binding_for_options(request: Request) -> tuple[str, str | None]:
    """What a new challenge is bound to, and the browser cookie to give a caller that has
    none yet (so the call that sends the credential comes from the same browser)."""
    if deps.browser_token(request) is not None:
        return deps.bound_to(request), None
    fresh = security.new_csrf_cookie()
    return binding(fresh, ""), fresh


def _options_with_cookie(
    request: Request, options: dict[str, Any], token: str, fresh: str | None
) -> Response:
    response = _options_reply(request, options, token)
    deps.ensure_browser_cookie(request, response, fresh)
    return response


# -- the signed-in user's passkeys ---------------------------------------------------------


@router.post(
    "/me/passkeys/options", response_model=PasskeyOptions, responses=merge(NOT_SIGNED_IN, CSRF)
)
async def passkey_creation_options(auth: Writer, request: Request) -> Response:
    """Options for adding a passkey to the account (a discoverable credential, user
    verification preferred, the account's passkeys excluded, no attestation)."""
    bound_to, fresh = _binding_for_options(request)
    options, token = await deps.services(request).passkeys.registration_options(
        auth.user, auth.session, bound_to
    )
    return _options_with_cookie(request, options, token, fresh)


@router.post(
    "/me/passkeys",
    status_code=201,
    response_model=PasskeyOut,
    responses=merge(REFUSED, NOT_SIGNED_IN, CSRF),
)
async def add_passkey(auth: Writer, body: PasskeyAdd, request: Request) -> PasskeyOut:
    """Add the passkey just made; the owner is mailed."""
    passkey = await deps.services(request).passkeys.register(
        auth.user,
        auth.session,
        body.token,
        deps.bound_to(request),
        body.credential,
        body.name,
        deps.device_of(request),
    )
    return PasskeyOut.of(passkey)


@router.get("/me/passkeys", response_model=PasskeyList, responses=NOT_SIGNED_IN)
async def list_passkeys(auth: Signed, request: Request) -> PasskeyList:
    passkeys = await deps.services(request).passkeys.list(auth.user.id)
    return PasskeyList(passkeys=[PasskeyOut.of(p) for p in passkeys])


@router.patch(
    "/me/passkeys/{passkey_id}",
    response_model=PasskeyOut,
    responses=merge(NOT_SIGNED_IN, CSRF, NO_SUCH_PASSKEY),
)
async def rename_passkey(
    auth: Writer, passkey_id: str, body: PasskeyRename, request: Request
) -> PasskeyOut:
    renamed = await deps.services(request).passkeys.rename(
        auth.user.id, passkey_id[:100], body.name, deps.device_of(request)
    )
    return PasskeyOut.of(renamed)


@router.delete(
    "/me/passkeys/{passkey_id}",
    status_code=204,
    responses=merge(NOT_SIGNED_IN, CSRF, NO_SUCH_PASSKEY, LAST_FACTOR),
)
async def delete_passkey(auth: Writer, passkey_id: str, request: Request) -> Response:
    """Remove a passkey; refused (409) for the last second factor of an account that
    requires one. The owner is mailed."""
    await deps.services(request).passkeys.delete(
        auth.user, passkey_id[:100], deps.device_of(request)
    )
    return Response(status_code=204)


# -- signing in with a passkey -------------------------------------------------------------


@router.post(
    "/auth/passkey/options", response_model=PasskeyOptions, responses=merge(MFA, RATE_LIMITED)
)
async def passkey_request_options(
    request: Request, body: PasskeySignInOptions | None = None
) -> Response:
    """Options for signing in with a passkey: any of this site's (discoverable, for the
    button and for the browser's autofill), or, with an ``mfa_token``, that account's."""
    svc = deps.services(request)
    ip_key = svc.limiter.ip_key(deps.ip_of(request))
    await svc.limiter.reserve_all(
        ("passkey_options_per_ip", (ip_key,)), ("passkey_options_global", ())
    )
    user_id = None
    if body is not None and body.mfa_token is not None:
        # bound as the mfa token is: to this browser's cookie, or its address
        bound_to, fresh = deps.bound_to(request), None
        user_id = (await svc.factors.pending(body.mfa_token, bound_to)).user.id
    else:
        bound_to, fresh = _binding_for_options(request)
    options, token = await svc.passkeys.authentication_options(bound_to, user_id)
    return _options_with_cookie(request, options, token, fresh)


@router.post("/auth/passkey/verify", response_model=SessionOut, responses=merge(REFUSED, MFA))
async def passkey_sign_in(body: PasskeySignIn, request: Request) -> Response:
    """Sign in with a passkey: a new session (``amr`` passkey); with an ``mfa_token``, the
    email sign-in it holds is finished (``amr`` email and passkey). Browsers (header
    ``Qrlogin-Client: browser``) get the session cookie, others the tokens."""
    svc = deps.services(request)
    bound_to = deps.bound_to(request)
    device = deps.device_of(request)
    if body.mfa_token is None:
        api = request.headers.get(security.BROWSER_HEADER) != "browser"
        started = await svc.passkeys.sign_in(body.token, bound_to, body.credential, device, api=api)
    else:
        pending = await svc.factors.pending(body.mfa_token, bound_to)
        try:
            await svc.passkeys.authenticate(
                body.token, bound_to, body.credential, user_id=pending.user.id
            )
        except PasskeyRefused:
            await svc.store.fail_challenge(pending.token_hash)  # the mfa token's tries
            raise
        started = await svc.factors.finish(pending, "passkey", device)
    return session_response(started, svc.clock.now())


# -- step-up before an approval ------------------------------------------------------------


@router.post(
    "/me/verify/passkey/options",
    response_model=PasskeyOptions,
    responses=merge(NOT_SIGNED_IN, CSRF),
)
async def step_up_options(auth: Writer, request: Request) -> Response:
    """Options for confirming it's you with one of your passkeys (user verification
    required) before an approval."""
    bound_to, fresh = _binding_for_options(request)
    options, token = await deps.services(request).passkeys.authentication_options(
        bound_to, auth.user.id, kind=VERIFY, session_id=auth.session.id
    )
    return _options_with_cookie(request, options, token, fresh)


@router.post("/me/verify/passkey", status_code=204, responses=merge(REFUSED, NOT_SIGNED_IN, CSRF))
async def step_up(auth: Writer, body: PasskeyStepUp, request: Request) -> Response:
    """The session proved a passkey just now: the next approval within 5 minutes needs no
    other."""
    svc = deps.services(request)
    device = deps.device_of(request)
    await svc.passkeys.authenticate(
        body.token,
        deps.bound_to(request),
        body.credential,
        kind=VERIFY,
        user_id=auth.user.id,
        session_id=auth.session.id,
        require_uv=True,
    )
    await svc.factors.verified(auth.user.id, auth.session.id, "passkey", device)
    return Response(status_code=204)
