"""TOTP (RFC 6238) and recovery codes: enrolment, the once-per-account code check, the
failure window and lock.

A TOTP code is accepted for the time steps t-1, t and t+1 (RFC 6238 §5.2: one step of clock
skew each way), and each step once per account: the newest accepted step is stored, and a
code is taken only by the conditional write that moves it forward, so a replay on any
instance, or 50 parallel uses of one code, get one success. The secret is stored sealed (JWE
dir/A256GCM) under a key derived from the server key, never in the clear. Recovery codes
are stored as HMAC(server key, code ‖ account), each usable once (NIST SP 800-63B §5.1.2).

Wrong codes count in the account's second-factor failure window: 5 in 15 minutes lock TOTP
and the recovery codes for 15 minutes, and every failure, locked or not, gets the same
``InvalidCode``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
from joserfc import jwe
from joserfc.jwk import OctKey

from qrlogin.accounts.factors import CodeAlreadyUsed, SecondFactors, factor_entry
from qrlogin.core.clock import Clock
from qrlogin.core.errors import FactorRequired, InvalidCode, InvalidState
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import code_hmac, constant_time_equal, normalize_code
from qrlogin.identity.device import Device
from qrlogin.store.ports import FactorStore
from qrlogin.store.records import RecoveryCode, Session, TotpFactor, User

STEP = 30  # seconds per time step (RFC 6238's default, what every authenticator app uses)
SKEW = 1  # steps accepted either side of now
DIGITS = 6
# Crockford's base32: no I, L, O or U; typed I, L and O are read as 1, 1 and 0
RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RECOVERY_HALF = 5  # two halves of 5 characters: 50 bits a code
_MISREAD = str.maketrans("ILO", "110")
WHAT = "an authenticator app (TOTP)"  # in the owner's notice mail
# the one reply to every failure of a second-factor code: wrong, used, or while locked
WRONG_CODE = (
    "That code is not valid. Type the code your authenticator app shows now, or one of your "
    "recovery codes. After several wrong codes, wait 15 minutes."
)


def new_recovery_code() -> str:
    """``xxxxx-xxxxx``, 50 random bits, lower case as shown to people."""
    chars = [secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_HALF)]
    code = "".join(chars).lower()
    return f"{code[:RECOVERY_HALF]}-{code[RECOVERY_HALF:]}"


def normalize_recovery_code(raw: str) -> str | None:
    """A typed recovery code as stored (upper case, no dash), or ``None`` if it cannot be one."""
    code = normalize_code(raw).translate(_MISREAD)
    if len(code) != 2 * RECOVERY_HALF or any(ch not in RECOVERY_ALPHABET for ch in code):
        return None
    return code


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
        # its own key: the server key itself never seals anything
        seal = hmac.new(key, b"qrlogin totp seal", hashlib.sha256).digest()
        self._seal_key = OctKey.import_key(seal)

    # -- the sealed secret -----------------------------------------------------------------

    def _seal(self, secret: str) -> str:
        return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, secret, self._seal_key)

    def _open(self, factor: TotpFactor) -> pyotp.TOTP:
        plain = jwe.decrypt_compact(factor.secret_sealed, self._seal_key).plaintext or b""
        return pyotp.TOTP(plain.decode(), digits=DIGITS, interval=STEP)

    def _recovery_hmac(self, user_id: str, code: str) -> str:
        return code_hmac(self.key, code, f"recovery\x00{user_id}")

    # -- enrolment -------------------------------------------------------------------------

    async def begin(self, user: User) -> tuple[str, str]:
        """A new secret for ``user`` and its ``otpauth://`` URI, replacing an unfinished
        enrolment; refused while TOTP is on (turn it off first)."""
        secret = pyotp.random_base32()
        factor = TotpFactor(
            user_id=user.id, secret_sealed=self._seal(secret), created_at=self.clock.now()
        )
        if not await self.store.begin_totp(factor):
            raise InvalidState(
                "An authenticator app is already set up for this account. Turn it off first "
                "to set up another."
            )
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=self.site_name)
        return secret, uri

    async def enable(self, user: User, code: str, device: Device) -> list[str]:
        """The first code from the app turns TOTP on; the new recovery codes (shown once)."""
        factor = await self.store.get_totp(user.id)
        if factor is None or factor.enabled_at is not None:
            raise InvalidState("Nothing is being set up. Start setting up an authenticator app.")
        steps = self._matching_steps(factor, code)
        if not steps:
            raise InvalidCode(
                "That code does not match. Type the code your authenticator app shows now."
            )
        now = self.clock.now()
        codes, rows = self._new_codes(user.id, now)
        entry = factor_entry("factor.added", user.id, device, "totp", now)
        if not await self.store.enable_totp(user.id, steps[-1], now, rows, entry):
            raise InvalidState("Nothing is being set up. Start setting up an authenticator app.")
        self.factors.notify(user, WHAT, added=True)
        return codes

    def _new_codes(self, user_id: str, now: float) -> tuple[list[str], list[RecoveryCode]]:
        codes = [new_recovery_code() for _ in range(self.policy.recovery_code_count)]
        rows = [
            RecoveryCode(
                code_hmac=self._recovery_hmac(user_id, normalize_recovery_code(c) or ""),
                user_id=user_id,
                created_at=now,
            )
            for c in codes
        ]
        return codes, rows

    def _matching_steps(self, factor: TotpFactor, raw: str) -> list[int]:
        """The time steps around now whose code ``raw`` is, oldest first."""
        code = normalize_code(raw)
        if len(code) != DIGITS or not code.isdigit():
            return []
        totp = self._open(factor)
        now_step = int(self.clock.now() // STEP)
        steps = range(now_step - SKEW, now_step + SKEW + 1)
        return [s for s in steps if constant_time_equal(totp.at(s * STEP), code)]

    # -- the check -------------------------------------------------------------------------

    async def check(self, user: User, code: str, device: Device) -> str:
        """``otp`` for a TOTP code of a step not used before, ``recovery`` for an unused
        recovery code; ``InvalidCode`` for everything else and while the factor is locked."""
        now = self.clock.now()
        fresh = await self.store.get_user(user.id)  # the lock as it is now, not as it was
        if fresh is None or (fresh.factor_locked_until or 0) > now:
            raise InvalidCode(WRONG_CODE)
        cleaned = normalize_code(code)
        if len(cleaned) == DIGITS and cleaned.isdigit():
            factor = await self.store.get_totp(user.id)
            steps = self._matching_steps(factor, cleaned) if factor and factor.enabled_at else []
            for step in steps:
                if await self.store.use_totp_step(user.id, step):
                    return "otp"
            if steps:  # the right code, already used (a replay or a parallel use): no guess
                raise CodeAlreadyUsed(WRONG_CODE)
            detail = "totp"
        else:
            recovery = normalize_recovery_code(code)
            if recovery is not None and await self.store.use_recovery_code(
                user.id, self._recovery_hmac(user.id, recovery), now
            ):
                return "recovery"
            detail = "recovery_codes"
        await self._failed(user.id, device, detail, now)
        raise InvalidCode(WRONG_CODE)

    async def _failed(self, user_id: str, device: Device, detail: str, now: float) -> None:
        policy = self.policy
        after = await self.store.record_factor_failure(
            user_id,
            now,
            policy.factor_failure_window,
            policy.factor_failure_limit,
            policy.factor_lockout,
            factor_entry("factor.failed", user_id, device, detail, now),
        )
        # the failure that reached the limit, and no other, writes the lock's row
        if after is not None and after.factor_failures == policy.factor_failure_limit:
            await self.store.audit(factor_entry("factor.locked", user_id, device, "totp", now))

    # -- changes that need a fresh second factor -------------------------------------------

    async def disable(self, user: User, session: Session, code: str | None, device: Device) -> None:
        """Turn TOTP off (and, with the last second factor, the recovery codes); not the last
        factor of an account that requires one (``FactorRequired``)."""
        factor = await self.store.get_totp(user.id)
        if factor is None or factor.enabled_at is None:
            raise InvalidState("No authenticator app is set up for this account.")
        fresh = await self.store.get_user(user.id)
        keys, _, _ = await self.store.factor_summary(user.id)
        if fresh is not None and fresh.mfa_required and not keys:
            raise FactorRequired()  # before a code is spent on it (the write checks again)
        await self.factors.fresh_factor(user, session, code, device)
        entry = factor_entry("factor.removed", user.id, device, "totp", self.clock.now())
        if not await self.store.delete_totp(user.id, entry):
            if await self.store.get_totp(user.id) is None:  # a parallel call removed it
                raise InvalidState("No authenticator app is set up for this account.")
            raise FactorRequired()
        self.factors.notify(user, WHAT, added=False)

    async def new_recovery_codes(
        self, user: User, session: Session, code: str | None, device: Device
    ) -> list[str]:
        """A new set of recovery codes in place of the old (which stop working at once)."""
        if not await self.factors.has_second_factor(user.id):
            raise InvalidState("Recovery codes come with a second factor. Set one up first.")
        await self.factors.fresh_factor(user, session, code, device)
        now = self.clock.now()
        codes, rows = self._new_codes(user.id, now)
        entry = factor_entry("factor.added", user.id, device, "recovery_codes", now)
        await self.store.replace_recovery_codes(user.id, rows, entry)
        self.factors.notify(user, "a new set of recovery codes", added=True)
        return codes
