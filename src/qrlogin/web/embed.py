"""``QRLogin``: qrlogin's handshake inside a host app that keeps its own users and sessions.

```python
from qrlogin import QRLogin, Settings

qr = QRLogin(
    Settings(public_url="https://app.example/qr", signin_url="/login?next={next}"),
    approvers=MyApprovers(),   # identity.ports.ApproverIdentity: who is signed in, still live?
    sessions=MySessions(),     # identity.ports.SessionStarter: the new device's session
)
app = FastAPI(lifespan=qr.lifespan)
app.mount("/qr", qr.asgi())
```

The public URL names the mount point: every link and QR code is built from it (never from
the Host header), qrlogin's cookies get its path, and pages link to its static files under
it. docs/embedding.md explains the two ports and what the host must do on revocation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from qrlogin.config import Settings, load_settings
from qrlogin.core.clock import Clock
from qrlogin.core.policy import Policy
from qrlogin.identity.ports import ApproverIdentity, CodeFailures, SessionStarter
from qrlogin.services import Services
from qrlogin.web.app import create_app


class QRLogin:
    """The embeddable qrlogin: the requester API and its event stream, the approver API, the
    ``/q/{handle}`` and ``/link`` pages and the ``<qr-login>`` widget's script, on the host's
    identity adapters."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        approvers: ApproverIdentity,
        sessions: SessionStarter,
        failures: CodeFailures | None = None,
        clock: Clock | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self._app = create_app(
            self.settings,
            clock=clock,
            policy=policy,
            approvers=approvers,
            sessions=sessions,
            failures=failures,
        )

    def asgi(self) -> FastAPI:
        """The ASGI app to mount (``app.mount("/qr", qr.asgi())``)."""
        return self._app

    @property
    def services(self) -> Services:
        services: Services = self._app.state.services
        return services

    @contextlib.asynccontextmanager
    async def lifespan(self, _host: Any = None) -> AsyncIterator[None]:
        """Migrate qrlogin's tables and run its event bus and housekeeping while the host
        runs. A mounted app gets no lifespan events of its own, so the host runs this one:
        ``FastAPI(lifespan=qr.lifespan)``, or ``async with qr.lifespan():`` inside its own."""
        async with self._app.router.lifespan_context(self._app):
            yield

    async def session_ended(self, session_id: str) -> int:
        """Tell qrlogin that one of the host's sessions ended (signed out, revoked): the
        login requests it had scanned or approved and that are not exchanged yet are denied,
        and their requesters told at once (DESIGN.md requirement 11). The exchange also asks
        ``approvers.session_is_live``, so a forgotten call cannot let an approval through;
        calling this tells the waiting device at once. Returns how many requests it ended."""
        return await self.services.login_requests.end_approvals_of(session_id)
