"""qrlogin as an OpenID Provider and an OAuth 2.0 authorization server (RFC 8628 device grant,
RFC 8414 metadata, RFC 7662 introspection, RFC 7009 revocation): clients, signing keys,
authorization codes and the token endpoint's grants. JOSE through joserfc."""
