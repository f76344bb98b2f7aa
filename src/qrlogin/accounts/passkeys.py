"""Passkeys (WebAuthn Level 3) on py_webauthn: registration, sign-in, second factor, step-up.

Each ceremony starts with options holding a fresh challenge. The challenge is kept as a
``FactorChallenge`` keyed by the SHA-256 of a random token the browser gets beside the
options and sends back with the credential: single use, at most ``challenge_lifetime``
(5 minutes), and bound to the browser that asked (``SecondFactors.binding``).

Verification is py_webauthn's (origin, RP ID, challenge, signature, user presence and, where
asked, verification, and the sign counter: when counters are in use, the new count must be
greater, WebAuthn §6.1.1). The counter is then moved with one conditional write from the
value the verifier saw, so of two assertions checked against the same counter one wins: a
cloned authenticator is refused. Every failure gets one reply, ``PasskeyRefused``.
"""

from __future__ import annotations

import logging
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json_dict
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from qrlogin.accounts.factors import SecondFactors, factor_entry
from qrlogin.core.clock import Clock
from qrlogin.core.errors import FactorRequired, NotFound, PasskeyRefused
from qrlogin.core.policy import Policy
from qrlogin.core.tokens import constant_time_equal, new_id, new_secret, sha256_hex
from qrlogin.identity.device import Device
from qrlogin.identity.ports import SessionGrant, StartedSession
from qrlogin.store.ports import FactorStore
from qrlogin.store.records import FactorChallenge, Passkey, Session, User

log = logging.getLogger("qrlogin.accounts")

REGISTER = "passkey_register"
SIGN_IN = "passkey_signin"  # a sign-in by passkey, or the second factor of an email one
VERIFY = "passkey_verify"  # a step-up before an approval
NAME_LENGTH = 64

Options = dict[str, Any]  # PublicKeyCredentialCreationOptionsJSON / …RequestOptionsJSON


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports.split():
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:  # one the library does not know yet: leave it out
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def clean_name(name: str | None, fallback: str = "Passkey") -> str:
    """A passkey's name as shown: printable, trimmed, capped."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:NAME_LENGTH] or fallback


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

    @property
    def _timeout_ms(self) -> int:
        """How long the browser's dialog may wait: as long as the challenge lives."""
        return int(self.policy.challenge_lifetime * 1000)

    # -- challenges ------------------------------------------------------------------------

    async def _new_challenge(
        self,
        kind: str,
        challenge: bytes,
        bound_to: str,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        token = new_secret()
        now = self.clock.now()
        await self.store.insert_challenge(
            FactorChallenge(
                token_hash=sha256_hex(token),
                kind=kind,
                created_at=now,
                expires_at=now + self.policy.challenge_lifetime,
                user_id=user_id,
                session_id=session_id,
                browser_hash=bound_to,
                challenge=bytes_to_base64url(challenge),
            )
        )
        return token

    async def _take(self, token: str, kind: str, bound_to: str) -> FactorChallenge:
        """Use the challenge of ``token`` once; another browser's is left alone."""
        if not token or len(token) > 200:
            raise PasskeyRefused()
        token_hash = sha256_hex(token)
        now = self.clock.now()
        ch = await self.store.get_challenge(token_hash, kind, now, 1)
        if ch is None or ch.browser_hash is None or ch.challenge is None:
            raise PasskeyRefused()
        if not constant_time_equal(ch.browser_hash, bound_to):
            raise PasskeyRefused()
        taken = await self.store.take_challenge(token_hash, kind, now, 1)
        if taken is None or taken.challenge is None:  # a parallel use won
            raise PasskeyRefused()
        return taken

    # -- registration ----------------------------------------------------------------------

    async def registration_options(
        self, user: User, session: Session, bound_to: str
    ) -> tuple[Options, str]:
        """Creation options for a new discoverable passkey of ``user``, and the token that
        goes back with the credential."""
        existing = await self.store.passkeys_of(user.id)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=user.id.encode(),
            user_name=user.email,
            user_display_name=user.display_name or user.email,
            timeout=self._timeout_ms,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(p) for p in existing],
        )
        token = await self._new_challenge(
            REGISTER, options.challenge, bound_to, user.id, session.id
        )
        return options_to_json_dict(options), token

    async def register(
        self,
        user: User,
        session: Session,
        token: str,
        bound_to: str,
        credential_json: dict[str, Any],
        name: str | None,
        device: Device,
    ) -> Passkey:
        """Verify a new credential against its challenge and keep it as a passkey."""
        ch = await self._take(token, REGISTER, bound_to)
        if ch.user_id != user.id or ch.session_id != session.id or ch.challenge is None:
            raise PasskeyRefused()
        try:
            verified = verify_registration_response(
                credential=credential_json,
                expected_challenge=base64url_to_bytes(ch.challenge),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
            )
        except Exception as exc:  # py_webauthn raises many kinds for a bad credential
            log.info("passkey registration refused: %s", exc)
            raise PasskeyRefused() from exc
        credential_id = bytes_to_base64url(verified.credential_id)
        if await self.store.passkey_by_credential(credential_id) is not None:
            raise PasskeyRefused()
        response = credential_json.get("response")
        transports = response.get("transports") if isinstance(response, dict) else None
        if not isinstance(transports, list):
            transports = []
        now = self.clock.now()
        passkey = Passkey(
            id=new_id("pk"),
            user_id=user.id,
            credential_id=credential_id,
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            name=clean_name(name),
            created_at=now,
            transports=" ".join(str(t)[:20] for t in transports if isinstance(t, str))[:200],
            aaguid=verified.aaguid,
            backup_eligible=int(
                verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
            ),
            backup_state=int(verified.credential_backed_up),
        )
        entry = factor_entry("factor.added", user.id, device, "passkey", now, session.id)
        await self.store.insert_passkey(passkey, entry)
        self.factors.notify(user, "a passkey", added=True)
        return passkey

    # -- sign-in, second factor, step-up ---------------------------------------------------

    async def authentication_options(
        self,
        bound_to: str,
        user_id: str | None = None,
        *,
        kind: str = SIGN_IN,
        session_id: str | None = None,
    ) -> tuple[Options, str]:
        """Request options: for anyone's discoverable passkey (no ``user_id``), or for one
        account's (a second factor, a step-up)."""
        allowed = []
        if user_id is not None:
            allowed = [_descriptor(p) for p in await self.store.passkeys_of(user_id)]
        options = generate_authentication_options(
            rp_id=self.rp_id,
            timeout=self._timeout_ms,
            allow_credentials=allowed,
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if kind == VERIFY
                else UserVerificationRequirement.PREFERRED
            ),
        )
        token = await self._new_challenge(kind, options.challenge, bound_to, user_id, session_id)
        return options_to_json_dict(options), token

    async def authenticate(
        self,
        token: str,
        bound_to: str,
        credential_json: dict[str, Any],
        *,
        kind: str = SIGN_IN,
        user_id: str | None = None,
        session_id: str | None = None,
        require_uv: bool = False,
    ) -> Passkey:
        """Verify an assertion against its challenge and move the passkey's counter; the
        passkey. With ``user_id`` (or a challenge made for one account), it must be that
        account's; with ``session_id``, the challenge must be that session's."""
        ch = await self._take(token, kind, bound_to)
        owner = user_id or ch.user_id
        if (ch.user_id is not None and ch.user_id != owner) or ch.session_id != session_id:
            raise PasskeyRefused()
        credential_id = credential_json.get("id")
        if not isinstance(credential_id, str) or not 0 < len(credential_id) <= 1400:
            raise PasskeyRefused()
        passkey = await self.store.passkey_by_credential(credential_id)
        if passkey is None or (owner is not None and passkey.user_id != owner):
            raise PasskeyRefused()
        response = credential_json.get("response")
        handle = response.get("userHandle") if isinstance(response, dict) else None
        if handle and handle != bytes_to_base64url(passkey.user_id.encode()):
            raise PasskeyRefused()
        try:
            verified = verify_authentication_response(
                credential=credential_json,
                expected_challenge=base64url_to_bytes(ch.challenge or ""),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=require_uv,
            )
        except Exception as exc:  # py_webauthn raises many kinds for a bad assertion
            log.info("passkey assertion refused: %s", exc)
            raise PasskeyRefused() from exc
        now = self.clock.now()
        moved = await self.store.use_passkey(
            passkey.id,
            passkey.sign_count,
            verified.new_sign_count,
            verified.credential_backed_up,
            now,
        )
        if not moved:  # another assertion against the same counter won: a clone
            log.warning("passkey %s: counter already moved (cloned authenticator?)", passkey.id)
            raise PasskeyRefused()
        return passkey

    async def sign_in(
        self,
        token: str,
        bound_to: str,
        credential_json: dict[str, Any],
        device: Device,
        *,
        api: bool,
    ) -> StartedSession:
        """A sign-in with a passkey alone: a new session, ``amr`` passkey."""
        passkey = await self.authenticate(token, bound_to, credential_json)
        grant = SessionGrant(
            user_id=passkey.user_id, device=device, linked_by="passkey", api=api, amr=("passkey",)
        )
        return await self.factors.identity.start_session(grant)

    # -- the account's passkeys ------------------------------------------------------------

    async def list(self, user_id: str) -> list[Passkey]:
        return await self.store.passkeys_of(user_id)

    async def rename(self, user_id: str, passkey_id: str, name: str, device: Device) -> Passkey:
        renamed = await self.store.rename_passkey(user_id, passkey_id, clean_name(name))
        if renamed is None:
            raise NotFound("No such passkey. Reload the page to see your passkeys.")
        entry = factor_entry("factor.renamed", user_id, device, "passkey", self.clock.now())
        await self.store.audit(entry)
        return renamed

    async def delete(self, user: User, passkey_id: str, device: Device) -> None:
        """Remove a passkey; ``FactorRequired`` when it is the last second factor of an
        account that requires one."""
        if not any(p.id == passkey_id for p in await self.store.passkeys_of(user.id)):
            raise NotFound("No such passkey. Reload the page to see your passkeys.")
        entry = factor_entry("factor.removed", user.id, device, "passkey", self.clock.now())
        if not await self.store.delete_passkey(user.id, passkey_id, entry):
            raise FactorRequired()
        self.factors.notify(user, "a passkey", added=False)
