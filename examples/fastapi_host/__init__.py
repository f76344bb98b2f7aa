"""A small FastAPI app with its own users, passwords and cookie sessions, that adds
"sign in by scanning a QR code with your phone" by mounting qrlogin at ``/qr``
(README.md here; docs/embedding.md)."""

from examples.fastapi_host.app import HostApp, create_app

__all__ = ["HostApp", "create_app"]
