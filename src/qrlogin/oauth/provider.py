"""The OpenID Provider: authorization requests, the token endpoint's three grants, the device
authorization endpoint, userinfo, introspection, revocation and RP-initiated logout.

Every grant becomes one built-in session of the user (``Session.client_id`` set): its access
token is the session's token and its refresh tokens rotate with the sessions' reuse
detection, so the grant is listed among the user's devices and revoking it there (or signing
it out at the RP) revokes its tokens. Such a session serves its client only: qrlogin's own
API and pages do not take its tokens (``SessionService.authenticate``).

A device grant (RFC 8628) is a login request under another name: its device code is the
requester secret, its user code the one ``/link`` takes, and the approval is the handshake's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from qrlogin.core import codes
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidGrant, QrLoginError
from qrlogin.core.machine import Status
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import constant_time_equal, new_secret, sha256_hex
from qrlogin.handshake.service import LoginRequests
from qrlogin.identity.device import Device
from qrlogin.oauth.clients import Clients, redirect_uri_allowed
from qrlogin.oauth.device import PollGate
from qrlogin.oauth.errors import AuthorizationPageError, InvalidToken, OAuthError
from qrlogin.oauth.keys import SigningKeys
from qrlogin.sessions.service import Authenticated, IssuedSession, SessionService, session_entry
from qrlogin.store.ports import OAuthStore
from qrlogin.store.records import (
    AuthorizationCode,
    Consent,
    NewSessionRows,
    OAuthClient,
    Session,
    User,
)

SCOPES = ("openid", "profile", "email", "offline_access")
SCOPE_TEXT = {
    "openid": "Know who you are on {site} (an account id)",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Stay signed in when you are not using it",
}
PROMPTS = ("none", "login", "consent", "select_account")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", DEVICE_GRANT)
SECOND_FACTORS = frozenset({"passkey", "otp", "recovery"})


def oidc_amr(methods: tuple[str, ...]) -> list[str]:
    """The ``amr`` claim: how the browser session was made, as qrlogin records it (email,
    passkey, otp, qr, recovery), with RFC 8176's ``mfa`` when a second factor was used."""
    amr = list(dict.fromkeys(methods)) or ["qr"]
    if SECOND_FACTORS & set(amr) and len(amr) > 1:
        amr.append("mfa")
    return amr


_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
FRESH_PARAM = "qrl_after"  # a sign-in must be at least this recent (prompt=login, max_age)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (a registered URI may have one)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorization request (OIDC Core §3.1.2.1)."""

    client: OAuthClient
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    fresh_after: float | None  # set on the way back from a forced sign-in
    params: dict[str, str] = field(default_factory=dict)  # as received, for the consent form


@dataclass(frozen=True)
class Outcome:
    """What the authorization endpoint does next: redirect to ``redirect`` (the client's
    URI, with a code or an error), send the person to sign in (``sign_in``, the URL to
    come back to, ``fresh``: even if signed in), or show the consent page."""

    redirect: str | None = None
    sign_in: str | None = None
    fresh: bool = False
    consent: AuthorizationRequest | None = None


@dataclass(frozen=True)
class Logout:
    """What RP-initiated logout does: ``confirm`` asks the person first; else it signed out
    and goes on to ``redirect`` (the client's registered URI), or shows that it did."""

    confirm: bool
    redirect: str | None
    client: OAuthClient | None


class OpenIDProvider:
    def __init__(
        self,
        store: OAuthStore,
        sessions: SessionService,
        login_requests: LoginRequests,
        keys: SigningKeys,
        polls: PollGate,
        clock: Clock,
        policy: Policy,
        *,
        issuer: str,
        site_name: str,
        code_lifetime: float = 60.0,
        id_token_lifetime: float = 3600.0,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.login_requests = login_requests
        self.keys = keys
        self.polls = polls
        self.clients = Clients(store)
        self.clock = clock
        self.policy = policy
        self.issuer = issuer
        self.site_name = site_name
        self.code_lifetime = code_lifetime
        self.id_token_lifetime = id_token_lifetime

    # -- metadata --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 / OpenID Connect Discovery 1.0 metadata."""
        p = self.issuer
        return {
            "issuer": p,
            "authorization_endpoint": f"{p}/oauth/authorize",
            "token_endpoint": f"{p}/oauth/token",
            "device_authorization_endpoint": f"{p}/oauth/device_authorization",
            "userinfo_endpoint": f"{p}/oauth/userinfo",
            "introspection_endpoint": f"{p}/oauth/introspect",
            "revocation_endpoint": f"{p}/oauth/revoke",
            "end_session_endpoint": f"{p}/oauth/logout",
            "jwks_uri": f"{p}/oauth/jwks",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "amr",
                "sid",
                "email",
                "email_verified",
                "name",
            ],
            "prompt_values_supported": list(PROMPTS),
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "frontchannel_logout_supported": False,
            "backchannel_logout_supported": False,
        }

    # -- authorization ---------------------------------------------------------------------

    async def check_authorization(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Check an authorization request. An unknown client or a redirect URI it did not
        register raises ``AuthorizationPageError`` (a page, never a redirect); any other
        problem raises ``OAuthError`` to send back to the redirect URI."""
        client_id = params.get("client_id", "")
        client = await self.store.get_client(client_id) if client_id else None
        if client is None:
            raise AuthorizationPageError(
                "Unknown app",
                "The app that sent you here is not registered with this sign-in service, so "
                "you cannot sign in to it from here. Go back to the app and tell its owner.",
            )
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not redirect_uri_allowed(client, redirect_uri):
            raise AuthorizationPageError(
                "This sign-in link is not right",
                f"{client.name} asked to send you back to an address it has not registered, "
                "so you are not sent anywhere. Go back to the app and try again; if it keeps "
                "happening, tell the app's owner.",
            )
        state = params.get("state")
        if params.get("request") or params.get("request_uri"):
            raise OAuthError("request_not_supported", "Request objects are not supported.")
        if params.get("response_type") != "code":
            raise OAuthError(
                "unsupported_response_type", "Only the authorization code flow is supported."
            )
        scope = self._scope(params.get("scope"))
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or ("plain" if challenge else None)
        if challenge is not None and method != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256.")
        if challenge is not None and not _VERIFIER.match(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a valid S256 challenge.")
        if challenge is None and client.public:
            raise OAuthError(
                "invalid_request", "A public client must use PKCE (code_challenge with S256)."
            )
        prompt = frozenset(params.get("prompt", "").split())
        if not prompt <= set(PROMPTS) or ("none" in prompt and len(prompt) > 1):
            raise OAuthError("invalid_request", "prompt has an unknown or conflicting value.")
        max_age = None
        if params.get("max_age"):
            try:
                max_age = int(params["max_age"])
            except ValueError:
                raise OAuthError("invalid_request", "max_age must be a number.") from None
            if max_age < 0:
                raise OAuthError("invalid_request", "max_age must not be negative.")
        fresh_after = None
        if params.get(FRESH_PARAM):
            try:
                fresh_after = float(params[FRESH_PARAM])
            except ValueError:
                fresh_after = None
        nonce = params.get("nonce") or None
        if nonce is not None and len(nonce) > 300:
            raise OAuthError("invalid_request", "nonce is too long (300 characters at most).")
        if state is not None and len(state) > 2000:
            raise OAuthError("invalid_request", "state is too long.")
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            prompt=prompt,
            max_age=max_age,
            login_hint=params.get("login_hint") or None,
            fresh_after=fresh_after,
            params={k: v for k, v in params.items() if k != FRESH_PARAM},
        )

    def _scope(self, raw: str | None) -> str:
        asked = (raw or "openid").split()
        unknown = [s for s in asked if s not in SCOPES]
        if unknown:
            raise OAuthError("invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
        return " ".join(dict.fromkeys(asked))  # in order, once each

    def error_redirect(self, req: AuthorizationRequest, exc: OAuthError) -> str:
        return self.error_redirect_to(req.redirect_uri, req.state, exc)

    def error_redirect_to(self, redirect_uri: str, state: str | None, exc: OAuthError) -> str:
        """``exc`` on a redirect URI already checked to be the client's (RFC 6749 §4.1.2.1)."""
        return with_query(
            redirect_uri,
            {
                "error": exc.error,
                "error_description": exc.description,
                "state": state,
                "iss": self.issuer,
            },
        )

    async def authorize(
        self, req: AuthorizationRequest, auth: Authenticated | None, authorize_url: str
    ) -> Outcome:
        """The next step for a checked request, given who is signed in on the browser."""
        now = self.clock.now()
        fresh = "login" in req.prompt or (
            auth is not None
            and req.max_age is not None
            and now - auth.session.created_at > req.max_age
        )
        if req.fresh_after is not None and auth is not None:
            fresh = auth.session.created_at < req.fresh_after - 1  # a sign-in since then
        if auth is None or fresh:
            if "none" in req.prompt:
                return Outcome(
                    redirect=self.error_redirect(
                        req, OAuthError("login_required", "The person is not signed in.")
                    )
                )
            back = {k: v for k, v in req.params.items() if k != "prompt" or not fresh}
            if fresh:
                back[FRESH_PARAM] = str(int(now))
            return Outcome(sign_in=f"{authorize_url}?{urlencode(back)}", fresh=fresh)
        if await self.needs_consent(req, auth.user.id):
            if "none" in req.prompt:
                return Outcome(
                    redirect=self.error_redirect(
                        req, OAuthError("consent_required", "The person has not agreed yet.")
                    )
                )
            return Outcome(consent=req)
        return Outcome(redirect=await self.issue_code(req, auth))

    async def needs_consent(self, req: AuthorizationRequest, user_id: str) -> bool:
        if req.client.first_party:
            return False
        if "consent" in req.prompt:
            return True
        given = await self.store.get_consent(user_id, req.client.id)
        return given is None or not set(req.scope.split()) <= set(given.scope.split())

    async def decide(self, req: AuthorizationRequest, auth: Authenticated, approve: bool) -> str:
        """The consent page's answer: a code, or ``access_denied``, on the redirect URI."""
        if not approve:
            return self.error_redirect(
                req, OAuthError("access_denied", "The person did not allow it.")
            )
        await self.store.save_consent(
            Consent(auth.user.id, req.client.id, req.scope, self.clock.now())
        )
        return await self.issue_code(req, auth)

    def scope_texts(self, scope: str) -> list[str]:
        return [SCOPE_TEXT[s].format(site=self.site_name) for s in scope.split() if s in SCOPE_TEXT]

    async def issue_code(self, req: AuthorizationRequest, auth: Authenticated) -> str:
        code = new_secret()
        now = self.clock.now()
        await self.store.insert_code(
            AuthorizationCode(
                code_hash=sha256_hex(code),
                client_id=req.client.id,
                user_id=auth.user.id,
                browser_session_id=auth.session.id,
                redirect_uri=req.redirect_uri,
                scope=req.scope,
                auth_time=auth.session.created_at,
                amr=" ".join(oidc_amr(auth.session.methods)),
                created_at=now,
                expires_at=now + self.code_lifetime,
                nonce=req.nonce,
                code_challenge=req.code_challenge,
            )
        )
        return with_query(req.redirect_uri, {"code": code, "state": req.state, "iss": self.issuer})

    # -- token endpoint --------------------------------------------------------------------

    async def token(
        self, form: Mapping[str, str], authorization: str | None, device: Device
    ) -> dict[str, Any]:
        client = await self.clients.authenticate(form, authorization)
        grant = form.get("grant_type", "")
        if grant == "authorization_code":
            return await self._code_grant(client, form, device)
        if grant == "refresh_token":
            return await self._refresh_grant(client, form, device)
        if grant == DEVICE_GRANT:
            return await self._device_grant(client, form, device)
        if not grant:
            raise OAuthError("invalid_request", "grant_type is missing.")
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported.")

    async def _code_grant(
        self, client: OAuthClient, form: Mapping[str, str], device: Device
    ) -> dict[str, Any]:
        raw = form.get("code", "")
        if not raw:
            raise OAuthError("invalid_request", "code is missing.")
        code_hash = sha256_hex(raw)
        code = await self.store.get_code(code_hash)
        now = self.clock.now()
        if code is None or code.client_id != client.id:
            raise OAuthError("invalid_grant", "The code is not valid.")
        if code.used_at is not None:
            await self._revoke_issued(code, device)
            raise OAuthError(
                "invalid_grant", "The code was used already; the tokens it gave are revoked."
            )
        if code.expires_at <= now:
            raise OAuthError("invalid_grant", "The code has expired. Sign in again.")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri is not the one the code was sent to.")
        verifier = form.get("code_verifier")
        if code.code_challenge is not None:
            if not verifier or not _VERIFIER.match(verifier):
                raise OAuthError("invalid_grant", "code_verifier is missing or malformed.")
            if not constant_time_equal(s256(verifier), code.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the challenge.")
        elif verifier:
            raise OAuthError("invalid_grant", "This code was issued without PKCE.")
        if not await self.sessions.is_active(code.browser_session_id, code.user_id):
            raise OAuthError("invalid_grant", "The sign-in behind this code has ended.")
        user = await self.store.get_user(code.user_id)
        if user is None:
            raise OAuthError("invalid_grant", "The account is gone.")
        issued, rows = self._new_grant(
            user, client, code.scope, device, "oauth", linked_from=code.browser_session_id
        )
        if not await self.store.redeem_code(code_hash, now, rows):
            latest = await self.store.get_code(code_hash)
            if latest is not None and latest.used_at is not None:
                await self._revoke_issued(latest, device)
            raise OAuthError("invalid_grant", "The code was used already or has expired.")
        await self.sessions.announce(user.id, issued.session, None, mail=False)
        return await self._token_reply(
            client,
            issued,
            code.scope,
            auth_time=code.auth_time,
            nonce=code.nonce,
            amr=code.amr.split(),
            sid=code.browser_session_id,
        )

    def _new_grant(
        self,
        user: User,
        client: OAuthClient,
        scope: str,
        device: Device,
        linked_by: str,
        *,
        linked_from: str | None,
    ) -> tuple[IssuedSession, NewSessionRows]:
        token, session = self.sessions.new_session(
            user,
            Device(client.name, device.user_agent, device.ip),
            linked_by,
            linked_from_session_id=linked_from,
            api=True,
            client_id=client.id,
            scope=scope,
        )
        issued, refresh = self.sessions.with_refresh_token(IssuedSession(token, session, user))
        audit = session_entry("session.created", session, self.clock.now(), device)
        return issued, NewSessionRows(session, refresh, audit)

    async def _revoke_issued(self, code: AuthorizationCode, device: Device) -> None:
        """A code used twice: whoever holds it may be an attacker, so what it gave goes."""
        if code.session_id is None:
            return
        session = await self.store.get_session(code.session_id)
        if session is not None:
            await self.sessions.revoke(session, "code_reused", device)

    async def _refresh_grant(
        self, client: OAuthClient, form: Mapping[str, str], device: Device
    ) -> dict[str, Any]:
        raw = form.get("refresh_token", "")
        if not raw:
            raise OAuthError("invalid_request", "refresh_token is missing.")
        try:
            issued = await self.sessions.refresh(raw, device, client_id=client.id)
        except InvalidGrant:
            raise OAuthError("invalid_grant", "The refresh token is not valid.") from None
        scope = issued.session.scope or "openid"
        return await self._token_reply(client, issued, scope, id_token=False)

    async def _device_grant(
        self, client: OAuthClient, form: Mapping[str, str], device: Device
    ) -> dict[str, Any]:
        raw = form.get("device_code", "")
        if not raw:
            raise OAuthError("invalid_request", "device_code is missing.")
        rec = await self.store.login_request_by_secret(sha256_hex(raw))
        if rec is None or rec.client_id != client.id:
            raise OAuthError("invalid_grant", "The device code is not valid.")
        if await self.polls.too_soon(rec.id):
            raise OAuthError(
                "slow_down", f"Poll at most every {self.polls.interval:g} seconds; add 5 more."
            )
        status = rec.status_at(self.clock.now())
        if status in (Status.PENDING, Status.SCANNED):
            raise OAuthError("authorization_pending", "Not approved yet.")
        if status in (Status.DENIED, Status.CANCELLED):
            raise OAuthError("access_denied", "The sign-in was denied.")
        if status is Status.EXPIRED:
            raise OAuthError("expired_token", "The device code has expired. Start again.")
        if status is Status.CONSUMED:
            raise OAuthError("invalid_grant", "This device code was used already.")
        try:
            started = await self.login_requests.exchange(
                rec, None, device, api=True, client_id=client.id
            )
        except QrLoginError as exc:
            error = (
                exc.error if exc.error in ("access_denied", "expired_token") else "invalid_grant"
            )
            raise OAuthError(error, exc.message) from None
        user = await self.store.get_user(started.user_id)
        session = await self.store.get_session(started.session_id)
        if user is None or session is None or started.access_token is None:
            raise OAuthError("invalid_grant", "The account is gone.")
        issued = IssuedSession(started.access_token, session, user, started.refresh_token)
        return await self._token_reply(
            client,
            issued,
            rec.scope or "openid",
            auth_time=rec.approved_at or self.clock.now(),
            amr=oidc_amr(session.methods),
            sid=session.id,
        )

    async def _token_reply(
        self,
        client: OAuthClient,
        issued: IssuedSession,
        scope: str,
        *,
        id_token: bool = True,
        auth_time: float = 0.0,
        nonce: str | None = None,
        amr: list[str] | None = None,
        sid: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        expires = issued.session.access_expires_at or issued.session.expires_at
        reply: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": max(0, int(expires - now)),
            "scope": scope,
        }
        if issued.refresh_token is not None:
            reply["refresh_token"] = issued.refresh_token
        if id_token and "openid" in scope.split():
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "sub": issued.user.id,
                "aud": client.id,
                "azp": client.id,
                "iat": int(now),
                "exp": int(now + self.id_token_lifetime),
                "auth_time": int(auth_time),
                "amr": amr or ["qr"],
                "sid": sid or issued.session.id,
            }
            if nonce is not None:
                claims["nonce"] = nonce
            claims.update(self.user_claims(issued.user, scope))
            reply["id_token"] = await self.keys.sign(claims)
        return reply

    def user_claims(self, user: User, scope: str) -> dict[str, Any]:
        scopes = scope.split()
        claims: dict[str, Any] = {}
        if "email" in scopes:
            claims.update(email=user.email, email_verified=True)
        if "profile" in scopes:
            claims["name"] = user.display_name
        return claims

    # -- device authorization --------------------------------------------------------------

    async def device_authorization(
        self, form: Mapping[str, str], authorization: str | None, device: Device
    ) -> dict[str, Any]:
        client = await self.clients.authenticate(form, authorization)
        scope = self._scope(form.get("scope"))
        created = await self.login_requests.create(
            Device(client.name, device.user_agent, device.ip), client_id=client.id, scope=scope
        )
        rec = created.request
        code = self.login_requests.user_code(rec)
        p = self.issuer
        return {
            "device_code": created.secret,
            "user_code": codes.display_user_code(code),
            "verification_uri": f"{p}/link",
            "verification_uri_complete": f"{p}/link?{urlencode({'user_code': code})}",
            "expires_in": max(0, int(rec.expires_at - self.clock.now())),
            "interval": int(self.polls.interval),
            # qrlogin's extension: wait on this stream (Authorization: Bearer <device_code>)
            "qrlogin_events_uri": f"{p}/api/v1/login-requests/{rec.id}/events",
        }

    # -- userinfo, introspection, revocation -----------------------------------------------

    async def userinfo(self, token: str | None) -> dict[str, Any]:
        auth = await self.sessions.authenticate_client(token)
        if auth is None:
            raise InvalidToken()
        scope = auth.session.scope or "openid"
        return {"sub": auth.user.id, **self.user_claims(auth.user, scope)}

    async def _session_of_token(self, token: str) -> tuple[Session | None, bool]:
        """The session a token belongs to, and whether it is its access token (else one of
        its refresh tokens)."""
        session = await self.store.session_by_token_hash(sha256_hex(token))
        if session is not None:
            return session, True
        return await self.store.session_by_refresh_token(sha256_hex(token)), False

    async def introspect(
        self, form: Mapping[str, str], authorization: str | None
    ) -> dict[str, Any]:
        client = await self.clients.authenticate(form, authorization)
        if client.public:
            raise OAuthError("invalid_client", "Introspection needs a confidential client.", 401)
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "token is missing.")
        session, access = await self._session_of_token(token)
        now = self.clock.now()
        if session is None or session.client_id != client.id:
            return {"active": False}
        if access:
            live = session.active_at(now, self.policy.session_idle_timeout)
            expires = session.access_expires_at or session.expires_at
        else:
            live = session.revoked_at is None and now < session.expires_at
            expires = session.expires_at
        if not live:
            return {"active": False}
        return {
            "active": True,
            "client_id": client.id,
            "sub": session.user_id,
            "scope": session.scope or "openid",
            "token_type": "Bearer" if access else "refresh_token",
            "exp": int(expires),
            "iat": int(session.created_at),
            "iss": self.issuer,
            "sid": session.id,
        }

    async def revoke(
        self, form: Mapping[str, str], authorization: str | None, device: Device
    ) -> None:
        """RFC 7009: revoking either token of a grant ends the grant's session (both)."""
        client = await self.clients.authenticate(form, authorization)
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "token is missing.")
        session, _ = await self._session_of_token(token)
        if session is not None and session.client_id == client.id:
            await self.sessions.revoke(session, "revoked_by_client", device)

    # -- RP-initiated logout ---------------------------------------------------------------

    async def logout(
        self,
        params: Mapping[str, str],
        auth: Authenticated | None,
        device: Device,
        *,
        confirmed: bool,
    ) -> Logout:
        """OpenID Connect RP-Initiated Logout 1.0. With a valid ``id_token_hint`` naming the
        browser's own session (``sid``) it signs out at once; otherwise it asks first
        (``confirmed`` is the answer). ``post_logout_redirect_uri`` must be registered by
        the client (the hint's audience or ``client_id``), or nobody is redirected."""
        hint = params.get("id_token_hint")
        claims = await self.keys.verify(hint) if hint else None
        if hint and (claims is None or claims.get("iss") != self.issuer):
            raise AuthorizationPageError(
                "This sign-out link is not right",
                "The app sent a sign-out request this service cannot check. You are still "
                "signed in here; sign out from your account page if you want to.",
            )
        aud = claims.get("aud") if claims else None
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        client_id = params.get("client_id") or (audiences[0] if audiences else None)
        if client_id and audiences and client_id not in audiences:
            raise AuthorizationPageError(
                "This sign-out link is not right",
                "The app and the sign-in it names do not belong together.",
            )
        client = await self.store.get_client(client_id) if client_id else None
        target = params.get("post_logout_redirect_uri")
        redirect = None
        if target:
            if client is None or target not in client.post_logout_redirect_uris:
                raise AuthorizationPageError(
                    "This sign-out link is not right",
                    "The app asked to send you to an address it has not registered, so you "
                    "are not sent anywhere.",
                )
            redirect = with_query(target, {"state": params.get("state")})
        own = claims is not None and auth is not None and claims.get("sid") == auth.session.id
        if auth is not None and not own and not confirmed:
            return Logout(confirm=True, redirect=redirect, client=client)
        if auth is not None:
            await self._end_browser_session(auth, client, device)
        elif claims is not None and isinstance(claims.get("sid"), str) and client is not None:
            await self._end_client_grants(str(claims.get("sub")), claims["sid"], client, device)
        return Logout(confirm=False, redirect=redirect, client=client)

    async def _end_browser_session(
        self, auth: Authenticated, client: OAuthClient | None, device: Device
    ) -> None:
        if client is not None:
            await self._end_client_grants(auth.user.id, auth.session.id, client, device)
        await self.sessions.revoke(auth.session, "signed_out", device)

    async def _end_client_grants(
        self, user_id: str, sid: str, client: OAuthClient, device: Device
    ) -> None:
        """The client's grants made from browser session ``sid`` (or that are ``sid``)."""
        for session in await self.store.active_sessions(user_id, self.clock.now()):
            if session.client_id == client.id and sid in (
                session.linked_from_session_id,
                session.id,
            ):
                await self.sessions.revoke(session, "signed_out", device)
