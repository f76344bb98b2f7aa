"""An example relying party: a small Starlette site with "Sign in with qrlogin" through
OpenID Connect (Authlib's client), and sign-out through qrlogin's end_session_endpoint."""
