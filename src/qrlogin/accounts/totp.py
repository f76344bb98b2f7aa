"""TOTP (RFC 6238) and recovery codes: enrolment, the once-per-account code check, the
failure window and lock. (Being written: see issue 14.)"""

from __future__ import annotations

from qrlogin.accounts.factors import SecondFactors
from qrlogin.core.clock import Clock
from qrlogin.core.errors import InvalidCode
from qrlogin.core.policy import Policy
from qrlogin.identity.device import Device
from qrlogin.store.ports import FactorStore
from qrlogin.store.records import User


class Totp:
    """``factors.CodeChecker``: TOTP codes and recovery codes of the built-in accounts."""

    def __init__(
        self,
        store: FactorStore,
        factors: SecondFactors,
        clock: Clock,
        policy: Policy,
        key: bytes,
        *,
        site_name: str,
    ) -> None:
        self.store = store
        self.factors = factors
        self.clock = clock
        self.policy = policy
        self.key = key
        self.site_name = site_name

    async def check(self, user: User, code: str, device: Device) -> str:
        raise InvalidCode()
