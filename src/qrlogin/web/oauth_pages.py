"""The OpenID Provider's browser pages: the authorization endpoint (sign-in, then consent),
and RP-initiated logout. A request that cannot be answered on a registered redirect URI gets
a page that says what to do, never a redirect."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from qrlogin.oauth.errors import AuthorizationPageError, OAuthError
from qrlogin.oauth.provider import AuthorizationRequest, OpenIDProvider
from qrlogin.web import deps
from qrlogin.web.oauth_api import provider
from qrlogin.web.pages import form_with_csrf, message, render
from qrlogin.web.security import csp_allowing_form_target

router = APIRouter(include_in_schema=False)
FORM_FIELDS = {"csrf", "decision", "confirm"}  # the pages' own fields, not the request's


def _params(items: list[tuple[str, str]]) -> dict[str, str] | None:
    """The request's parameters; ``None`` if one is repeated (RFC 6749 §3.1)."""
    params: dict[str, str] = {}
    for key, value in items:
        if key in params:
            return None
        params[key] = value
    return params


def _page_error(request: Request, exc: AuthorizationPageError) -> Response:
    return message(request, exc.title, exc.text, exc.status)


async def _checked(
    request: Request, op: OpenIDProvider, params: dict[str, str] | None
) -> AuthorizationRequest | Response:
    if params is None:
        return message(
            request,
            "This sign-in link is not right",
            "A parameter appears twice in it. Go back to the app and try again.",
            400,
        )
    try:
        return await op.check_authorization(params)
    except AuthorizationPageError as exc:
        return _page_error(request, exc)
    except OAuthError as exc:  # client and redirect URI checked out: tell the client
        target = op.error_redirect_to(params["redirect_uri"], params.get("state"), exc)
        return RedirectResponse(target, status_code=303)


def _consent_page(request: Request, op: OpenIDProvider, req: AuthorizationRequest) -> Response:
    response = render(
        request,
        "oauth_consent.html",
        client=req.client,
        scopes=op.scope_texts(req.scope),
        fields=req.params,
        redirect_host=req.redirect_uri.split("/")[2] if "://" in req.redirect_uri else "",
    )
    # Allow and Deny end in a redirect to the app
    response.headers["content-security-policy"] = csp_allowing_form_target(req.redirect_uri)
    return response


async def _next_step(request: Request, op: OpenIDProvider, req: AuthorizationRequest) -> Response:
    base = deps.services(request).settings.base_path
    auth = await deps.current_session(request)
    outcome = await op.authorize(req, auth, f"{base}/oauth/authorize")
    if outcome.redirect is not None:
        return RedirectResponse(outcome.redirect, status_code=303)
    if outcome.sign_in is not None:
        target = f"{base}/login?next={quote(outcome.sign_in, safe='')}"
        if outcome.fresh:
            target += "&reauth=1"
        if req.login_hint:
            target += f"&login_hint={quote(req.login_hint, safe='')}"
        return RedirectResponse(target, status_code=303)
    return _consent_page(request, op, req)


@router.get("/oauth/authorize")
async def authorize(request: Request) -> Response:
    """OpenID Connect's authorization endpoint (code flow, PKCE). A browser that is not
    signed in goes to the QR sign-in page and comes back here; then the consent page (not
    for first-party clients, nor again for what the person allowed before); then the
    client's redirect URI with ``code``, ``state`` and ``iss``."""
    op = provider(request)
    checked = await _checked(request, op, _params(list(request.query_params.multi_items())))
    if isinstance(checked, Response):
        return checked
    return await _next_step(request, op, checked)


@router.post("/oauth/authorize/decide")
async def decide(request: Request) -> Response:
    """The consent page's Allow or Deny."""
    form = await form_with_csrf(request)
    op = provider(request)
    params = {k: v for k, v in form.items() if k not in FORM_FIELDS}
    checked = await _checked(request, op, params)
    if isinstance(checked, Response):
        return checked
    auth = await deps.current_session(request)
    if auth is None:  # signed out meanwhile: sign in again, then decide again
        return await _next_step(request, op, checked)
    target = await op.decide(checked, auth, approve=form.get("decision") == "allow")
    return RedirectResponse(target, status_code=303)


@router.api_route("/oauth/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    """OpenID Connect RP-Initiated Logout (``end_session_endpoint``)."""
    op = provider(request)
    confirmed = False
    if request.method == "POST":
        form = await request.form()
        items = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        if any(k == "confirm" for k, _ in items):  # our own confirmation page's answer
            await form_with_csrf(request)
            confirmed = dict(items).get("confirm") == "yes"
            if not confirmed:  # "Stay signed in"
                return RedirectResponse(f"{deps.services(request).settings.base_path}/account", 303)
    else:
        items = list(request.query_params.multi_items())
    params = _params([(k, v) for k, v in items if k not in FORM_FIELDS])
    if params is None:
        return message(request, "This sign-out link is not right", "A parameter appears twice.")
    auth = await deps.current_session(request)
    try:
        outcome = await op.logout(params, auth, deps.device_of(request), confirmed=confirmed)
    except AuthorizationPageError as exc:
        return _page_error(request, exc)
    if outcome.confirm:
        page = render(request, "oauth_logout.html", client=outcome.client, fields=params)
        if outcome.redirect is not None:  # "Sign out" ends in a redirect to the app
            page.headers["content-security-policy"] = csp_allowing_form_target(outcome.redirect)
        return page
    response: Response
    if outcome.redirect is not None:
        response = RedirectResponse(outcome.redirect, status_code=303)
    else:
        name = outcome.client.name if outcome.client else "the app"
        response = message(
            request,
            "You are signed out",
            f"You are signed out of {deps.services(request).settings.site_name} and {name} "
            "on this browser. You can close this tab.",
        )
    deps.clear_cookie(request, response, deps.cookie_names(request).session)
    return response
