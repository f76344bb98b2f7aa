"""Fixtures for the SDK and terminal tests, all against a real server on 127.0.0.1.

Fixtures
--------
config_home     $XDG_CONFIG_HOME in tmp_path, and keyring's "no backend" forced, so sessions
                go to files there (never to the keyring of whoever runs the tests)
store           the ``FileStore`` in config_home
side            parametrized "sync" | "async": ``Client`` or ``AsyncClient`` behind one
                blocking face (``side.call(coroutine_or_value_function, ...)``), so one test
                body proves both drivers of the shared flows
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from client_support import Side

from qrlogin.client import FileStore


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import keyring
    from keyring.backends import fail

    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    # for the console scripts this starts, and for this process (whose keyring may have
    # found a real backend before)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("QRLOGIN_TOKEN_STORE", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield home
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def store(config_home: Path) -> FileStore:
    return FileStore(config_home / "qrlogin")


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest, store: FileStore) -> Iterator[Side]:
    made = Side(request.param, store)
    try:
        yield made
    finally:
        made.close()
