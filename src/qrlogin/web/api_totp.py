"""TOTP and recovery codes of the signed-in account, the second-factor step of an email
sign-in (``POST /auth/second-factor``), a session's step-up with a code, and the summary of
an account's second factors that the account and sign-in pages read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from qrlogin.sessions.service import Authenticated
from qrlogin.web import deps, qr
from qrlogin.web.responses import CSRF, NOT_SIGNED_IN, merge, refusal
from qrlogin.web.schemas import (
    FactorCode,
    FactorsOut,
    FreshFactor,
    RecoveryCodes,
    RequireFactor,
    SecondFactorBody,
    SessionOut,
    TotpEnrolment,
    Verified,
)
from qrlogin.web.sessions import session_response

router = APIRouter(prefix="/api/v1", tags=["factors"])
WRITE = merge(NOT_SIGNED_IN, CSRF)
WRONG_CODE = refusal(400, "invalid_code: one reply for every wrong, used or locked-out code")
NOT_NOW = refusal(409, "invalid_state: TOTP is not in a state that allows this (on, or off)")
STEP_UP = refusal(
    403, "step_up_required: no code came, and the session proved no second factor lately"
)
NO_FACTOR = refusal(409, "invalid_state: the account has no second factor to require")
LAST_FACTOR = refusal(409, "last_factor: the account requires a second factor, and it is this")


Writer = Annotated[Authenticated, Depends(deps.require_writer)]


@router.get("/me/factors", response_model=FactorsOut, responses=NOT_SIGNED_IN)
async def factors_of_me(request: Request) -> FactorsOut:
    """What second factors the signed-in account has."""
    return await factors_of(request, await deps.require_session(request))


async def factors_of(request: Request, auth: Authenticated) -> FactorsOut:
    svc = deps.services(request)
    keys, totp, codes = await svc.store.factor_summary(auth.user.id)
    return FactorsOut(
        methods=await svc.factors.methods(auth.user.id),
        passkeys=keys,
        totp=totp,
        recovery_codes_left=codes,
        mfa_required=bool(auth.user.mfa_required),
    )


@router.post(
    "/me/factors/required",
    response_model=FactorsOut,
    responses=merge(WRITE, WRONG_CODE, STEP_UP, NO_FACTOR),
)
async def factors_required(auth: Writer, body: RequireFactor, request: Request) -> FactorsOut:
    """Require a second factor for this account (then its last one cannot be removed), or
    stop requiring it, which needs a fresh second factor as turning TOTP off does."""
    svc = deps.services(request)
    await svc.factors.set_required(
        auth.user, auth.session, body.required, body.code, deps.device_of(request)
    )
    user = await svc.store.get_user(auth.user.id)
    return await factors_of(request, Authenticated(auth.session, user or auth.user))


@router.post(
    "/me/totp", status_code=201, response_model=TotpEnrolment, responses=merge(WRITE, NOT_NOW)
)
async def totp_begin(request: Request, auth: Writer) -> TotpEnrolment:
    """Start setting up an authenticator app: a new secret, its ``otpauth://`` URI and the
    URI's QR code (SVG). Nothing is on until ``/me/totp/verify`` gets a code from the app;
    a second call replaces an unfinished set-up."""
    secret, uri = await deps.services(request).totp.begin(auth.user)
    return TotpEnrolment(
        secret=secret, otpauth_uri=uri, qr_svg=qr.svg(uri, error="m", scale=5).decode()
    )


@router.post(
    "/me/totp/verify",
    response_model=RecoveryCodes,
    responses=merge(WRITE, WRONG_CODE, NOT_NOW),
)
async def totp_verify(auth: Writer, body: FactorCode, request: Request) -> RecoveryCodes:
    """The app's first code turns TOTP on; the reply holds 10 new recovery codes, shown
    this once (any earlier ones stop working)."""
    codes = await deps.services(request).totp.enable(auth.user, body.code, deps.device_of(request))
    return RecoveryCodes(recovery_codes=codes)


@router.post(
    "/me/totp/disable",
    status_code=204,
    responses=merge(WRITE, WRONG_CODE, STEP_UP, NOT_NOW, LAST_FACTOR),
)
async def totp_disable(request: Request, auth: Writer, body: FreshFactor | None = None) -> Response:
    """Turn TOTP off. Needs a fresh second factor: a TOTP or recovery code in ``code``, or
    a session that proved one within the last 5 minutes. With the account's last second
    factor go its recovery codes."""
    code = body.code if body else None
    await deps.services(request).totp.disable(
        auth.user, auth.session, code, deps.device_of(request)
    )
    return Response(status_code=204)


@router.post(
    "/me/recovery-codes",
    response_model=RecoveryCodes,
    responses=merge(WRITE, WRONG_CODE, STEP_UP, NOT_NOW),
)
async def recovery_codes_new(
    request: Request, auth: Writer, body: FreshFactor | None = None
) -> RecoveryCodes:
    """A new set of 10 recovery codes in place of the old ones; needs a fresh second factor
    as turning TOTP off does."""
    code = body.code if body else None
    codes = await deps.services(request).totp.new_recovery_codes(
        auth.user, auth.session, code, deps.device_of(request)
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post("/me/verify", response_model=Verified, responses=merge(WRITE, WRONG_CODE))
async def verify_me(auth: Writer, body: FactorCode, request: Request) -> Verified:
    """Step-up: this session proves a second factor now (a TOTP or recovery code), so for
    the next 5 minutes it may approve sign-ins and change its factors without a code."""
    svc = deps.services(request)
    await svc.factors.verify_code(auth.user, auth.session.id, body.code, deps.device_of(request))
    return Verified(verified_at=svc.clock.now())


@router.post(
    "/auth/second-factor",
    response_model=SessionOut,
    responses=merge(
        WRONG_CODE,
        refusal(
            401, "invalid_mfa_token: unknown, used, expired, out of tries or another browser's"
        ),
    ),
)
async def second_factor(body: SecondFactorBody, request: Request) -> Response:
    """Finish an email sign-in that answered ``second_factor_required``: its ``mfa_token``
    and a TOTP or recovery code. The token works once, for 5 minutes, in the browser (or,
    without the browser cookie, from the address) that signed in by email; the session is
    given as the email step's would have been (cookie for a browser, tokens for an API
    client)."""
    svc = deps.services(request)
    started, _ = await svc.factors.finish_with_code(
        body.mfa_token, deps.bound_to(request), body.code, deps.device_of(request)
    )
    return session_response(started, svc.clock.now())
