"""qrlogin: sign in on a new device by scanning a QR code with a device already signed in.

``QRLogin`` embeds the handshake in a host app (docs/embedding.md); ``Settings`` configures
it. Both are imported on first use, so ``import qrlogin.core`` (or the SDK) loads no server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["QRLogin", "Settings", "__version__"]

if TYPE_CHECKING:
    from qrlogin.config import Settings
    from qrlogin.web.embed import QRLogin


def __getattr__(name: str) -> Any:
    if name == "QRLogin":
        from qrlogin.web.embed import QRLogin

        return QRLogin
    if name == "Settings":
        from qrlogin.config import Settings

        return Settings
    raise AttributeError(f"module 'qrlogin' has no attribute {name!r}")
