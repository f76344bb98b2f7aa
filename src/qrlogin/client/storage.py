"""Where a signed-in device keeps its session: the OS keyring when one is usable, otherwise a
file per server under ``$XDG_CONFIG_HOME/qrlogin/`` (``~/.config/qrlogin``), mode 0600, written
atomically (a temporary file in the same directory, then ``os.replace``).

``QRLOGIN_TOKEN_STORE=file`` or ``=keyring`` overrides the choice.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from qrlogin.client.state import Session

SERVICE = "qrlogin"


def normalize_url(server_url: str) -> str:
    """One spelling per server: no trailing slash (the key of its entry)."""
    return server_url.strip().rstrip("/")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qrlogin"


class TokenStore(Protocol):
    """One session per server URL."""

    def load(self, server_url: str) -> Session | None: ...
    def save(self, session: Session) -> None: ...
    def delete(self, server_url: str) -> None: ...


def write_private(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` is never seen half-written nor readable by others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp made it 0600
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class FileStore:
    """``<directory>/sessions/<quoted server URL>.json``, each 0600."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or config_dir()) / "sessions"

    def path_for(self, server_url: str) -> Path:
        return self.directory / (quote(normalize_url(server_url), safe="") + ".json")

    def load(self, server_url: str) -> Session | None:
        try:
            text = self.path_for(server_url).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return Session.from_json(json.loads(text))

    def save(self, session: Session) -> None:
        write_private(self.path_for(session.server_url), json.dumps(session.to_json()))

    def delete(self, server_url: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(server_url).unlink()


class KeyringStore:
    """The OS keyring (macOS Keychain, Windows Credential Locker, Secret Service …)."""

    def load(self, server_url: str) -> Session | None:
        import keyring

        text = keyring.get_password(SERVICE, normalize_url(server_url))
        return None if text is None else Session.from_json(json.loads(text))

    def save(self, session: Session) -> None:
        import keyring

        keyring.set_password(
            SERVICE, normalize_url(session.server_url), json.dumps(session.to_json())
        )

    def delete(self, server_url: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(SERVICE, normalize_url(server_url))


def keyring_usable() -> bool:
    """True when keyring found a real backend (not its ``fail.Keyring``, which it picks when
    there is none, nor an empty chain)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return False
    return True


def default_store() -> TokenStore:
    choice = os.environ.get("QRLOGIN_TOKEN_STORE", "")
    if choice == "file" or (choice != "keyring" and not keyring_usable()):
        return FileStore()
    return KeyringStore()


def remember_server(server_url: str) -> None:
    """The server the last sign-in used: where ``whoami`` and ``logout`` go by default."""
    write_private(config_dir() / "server", normalize_url(server_url) + "\n")


def remembered_server() -> str | None:
    try:
        return (config_dir() / "server").read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
