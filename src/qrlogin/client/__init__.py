"""The Python SDK: sign a desktop or command-line program in by QR code (or user code), and
use the session it gets.

``Client`` blocks, ``AsyncClient`` awaits; both drive the same sans-I/O flows (``login``,
``account``), as httpx's clients share one ``Auth.auth_flow``. Nothing here imports the server.
"""

from __future__ import annotations

from qrlogin.client.aio import AsyncClient, AsyncLoginFlow
from qrlogin.client.errors import (
    AccessDenied,
    AlreadyUsed,
    ExpiredToken,
    InvalidCode,
    InvalidGrant,
    LoginCancelled,
    LoginDenied,
    NotSignedIn,
    QrLoginError,
    ServerUnreachable,
)
from qrlogin.client.state import LoginState, Session, User
from qrlogin.client.storage import FileStore, KeyringStore, TokenStore, default_store
from qrlogin.client.sync import Client, LoginFlow

__all__ = [
    "AccessDenied",
    "AlreadyUsed",
    "AsyncClient",
    "AsyncLoginFlow",
    "Client",
    "ExpiredToken",
    "FileStore",
    "InvalidCode",
    "InvalidGrant",
    "KeyringStore",
    "LoginCancelled",
    "LoginDenied",
    "LoginFlow",
    "LoginState",
    "NotSignedIn",
    "QrLoginError",
    "ServerUnreachable",
    "Session",
    "TokenStore",
    "User",
    "default_store",
]
