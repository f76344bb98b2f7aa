"""Passkeys (WebAuthn Level 3) on py_webauthn: registration, sign-in, step-up.
(Being written: see issue 14.)"""

from __future__ import annotations

from qrlogin.accounts.factors import SecondFactors
from qrlogin.core.clock import Clock
from qrlogin.core.policy import Policy
from qrlogin.store.ports import FactorStore


class Passkeys:
    def __init__(
        self,
        store: FactorStore,
        factors: SecondFactors,
        clock: Clock,
        policy: Policy,
        *,
        rp_id: str,
        rp_name: str,
        origin: str,
    ) -> None:
        self.store = store
        self.factors = factors
        self.clock = clock
        self.policy = policy
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origin = origin
