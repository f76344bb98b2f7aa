"""OAuth 2.0 / OpenID Connect errors (RFC 6749 §4.1.2.1 and §5.2, RFC 8628 §3.5, OIDC Core
§3.1.2.6, RFC 6750 §3.1): an ``error`` code from the standards, a human description, and the
status the token-style endpoints answer with."""

from __future__ import annotations


class OAuthError(Exception):
    """An error a client gets as ``{"error", "error_description"}`` (token, device,
    introspection and revocation endpoints), or on its redirect URI (authorization)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class InvalidClient(OAuthError):
    """Client authentication failed (unknown client, wrong or missing secret): 401."""

    def __init__(self, description: str = "Client authentication failed.") -> None:
        super().__init__("invalid_client", description, 401)


class InvalidToken(OAuthError):
    """A bearer access token that is missing, unknown, expired or revoked (RFC 6750)."""

    def __init__(self, description: str = "The access token is not valid.") -> None:
        super().__init__("invalid_token", description, 401)


class AuthorizationPageError(Exception):
    """An authorization or logout request that cannot be answered on a redirect URI (an
    unknown client, an unregistered redirect URI): the browser gets a page, never a
    redirect (RFC 6749 §4.1.2.1)."""

    def __init__(self, title: str, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.title = title
        self.text = text
        self.status = status
