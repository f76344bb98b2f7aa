"""Login requests in SQL: every state change one conditional ``UPDATE … RETURNING``; the
``WHERE`` names the states the transition may start from and the request's lifetime, so of two
racing callers exactly one gets a row back."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from qrlogin.core.machine import LIVE, TRANSITIONS, Action, Status
from qrlogin.store.base import SqlBase, insert_rows, shielded
from qrlogin.store.engine import Conn
from qrlogin.store.ports import AuditFor, UserCodeTaken
from qrlogin.store.records import AuditEntry, LoginRequest, NewSessionRows
from qrlogin.store.tables import login_requests

_LR = login_requests.c

# the reads behind every requester and approver call, built once (see ``SqlBase._first``)
_BY_ID = select(login_requests).where(_LR.id == bindparam("id"))
_BY_HANDLE = select(login_requests).where(_LR.handle_hash == bindparam("tag"))
_BY_HOLD = select(login_requests).where(_LR.hold_hash == bindparam("hold"))
_BY_USER_CODE = select(login_requests).where(
    _LR.user_code_hmac == bindparam("code"),
    _LR.expires_at > bindparam("now"),
    # a literal, so that both databases see the read fits the partial index of the codes
    # of pending requests (tables.py); a bound value could be any status
    _LR.status == literal_column(f"'{Status.PENDING.value}'"),
)
# what a database names when an insert breaks that index
_USER_CODE_INDEX = ("ux_login_requests_pending_user_code", "login_requests.user_code_hmac")


@functools.cache
def _transition_statement(
    action: Action, value_keys: tuple[str, ...], expect_shape: tuple[tuple[str, bool], ...]
) -> Update:
    """The conditional ``UPDATE … RETURNING`` of one transition, built once per shape (the
    action, the columns it sets, the columns it expects) with the values as bound parameters.
    The ``WHERE`` names the action's source states and the request's lifetime, so of two
    racing callers exactly one gets a row back."""
    sources = [s.value for s in TRANSITIONS[action].sources]
    conds = [
        _LR.id == bindparam("w_id"),
        # equalities, not IN: an IN list is expanded per execution, these compile once
        or_(*(_LR.status == source for source in sources)),
        _LR.expires_at > bindparam("w_now"),
    ]
    for name, is_none in expect_shape:
        conds.append(_LR[name].is_(None) if is_none else _LR[name] == bindparam(f"e_{name}"))
    new_values: dict[str, Any] = {
        "status": TRANSITIONS[action].target.value,
        "version": _LR.version + 1,
    }
    new_values.update({k: bindparam(f"v_{k}") for k in value_keys})
    return (
        update(login_requests).where(and_(*conds)).values(new_values).returning(*login_requests.c)
    )


class SqlLoginRequests(SqlBase):
    """``store.ports.LoginRequestStore`` in SQL."""

    @shielded
    async def insert_login_request(self, rec: LoginRequest, audit: AuditEntry | None) -> None:
        try:
            async with self._write() as conn:
                await insert_rows(conn, login_requests, rec.to_row())
                await self._audit(conn, [audit])
        except IntegrityError as exc:
            if any(name in str(exc.orig) for name in _USER_CODE_INDEX):
                raise UserCodeTaken() from exc
            raise

    @shielded
    async def get_login_request(self, request_id: str) -> LoginRequest | None:
        row = await self._first(_BY_ID, {"id": request_id})
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def login_request_by_handle(self, tag_hash: str) -> LoginRequest | None:
        """The request whose handles carry this tag (``handle_hash`` holds the tag's hash);
        the caller checks the rotating part (``ApproverFlows._by_handle``)."""
        row = await self._first(_BY_HANDLE, {"tag": tag_hash})
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def login_request_by_user_code(self, code_hmac: str, now: float) -> LoginRequest | None:
        row = await self._first(_BY_USER_CODE, {"code": code_hmac, "now": now})
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def login_request_by_hold(self, hold_hash: str) -> LoginRequest | None:
        row = await self._first(_BY_HOLD, {"hold": hold_hash})
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def hold_login_request(
        self, request_id: str, hold_hash: str, now: float
    ) -> LoginRequest | None:
        """Bind a hold token to a pending, live request (a later hold replaces it) and bump
        the version, so its requester hears that someone is signing in. Not a transition:
        the status stays ``pending``. ``None`` if the request is no longer pending."""
        where = and_(_LR.id == request_id, _LR.status == Status.PENDING.value, _LR.expires_at > now)
        values = {"hold_hash": hold_hash, "held_at": now, "version": _LR.version + 1}
        async with self._write() as conn:
            row = await self._update(conn, login_requests, where, values)
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def claimed_by_session(self, session_id: str, now: float) -> list[LoginRequest]:
        """The live requests that approver session claimed (scanned or approved)."""
        live = [Status.SCANNED.value, Status.APPROVED.value]
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(login_requests).where(
                            _LR.approver_session_id == session_id,
                            _LR.status.in_(live),
                            _LR.expires_at > now,
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [LoginRequest.from_mapping(r) for r in rows]

    @shielded
    async def count_by_status(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(_LR.status, func.count()).group_by(_LR.status))).all()
        return {str(status): int(n) for status, n in rows}

    @shielded
    async def count_pending_by_ip(self, ip_key: str, now: float, up_to: int) -> int:
        """Pending requests from the address or network ``ip_key`` (``LoginRequest.ip_key``),
        counted no further than ``up_to`` (a bounded scan)."""
        pending = (
            select(_LR.id)
            .where(_LR.ip_key == ip_key, _LR.status == Status.PENDING.value, _LR.expires_at > now)
            .limit(up_to)
            .subquery()
        )
        async with self.engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(pending))
        return int(n or 0)

    @staticmethod
    def _transition_where(
        request_id: str, action: Action, now: float, expect: Mapping[str, Any] | None
    ) -> ColumnElement[bool]:
        sources = [s.value for s in TRANSITIONS[action].sources]
        conds = [_LR.id == request_id, _LR.status.in_(sources), _LR.expires_at > now]
        for name, value in (expect or {}).items():
            conds.append(_LR[name].is_(None) if value is None else _LR[name] == value)
        return and_(*conds)

    async def _transition(
        self,
        conn: Conn,
        request_id: str,
        action: Action,
        now: float,
        values: Mapping[str, Any],
        expect: Mapping[str, Any] | None,
    ) -> LoginRequest | None:
        expect = expect or {}
        stmt = _transition_statement(
            action, tuple(values), tuple((k, v is None) for k, v in expect.items())
        )
        params = {"w_id": request_id, "w_now": now}
        params.update({f"v_{k}": v for k, v in values.items()})
        params.update({f"e_{k}": v for k, v in expect.items() if v is not None})
        row = await self._first_in(conn, stmt, params)
        return LoginRequest.from_mapping(row) if row else None

    @shielded
    async def transition(
        self,
        request_id: str,
        action: Action,
        now: float,
        values: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
        audit: AuditFor | None = None,
    ) -> LoginRequest | None:
        """Apply ``action`` if the request is in one of its source states and alive (and the
        ``expect`` columns match); return the new row, or ``None`` if another caller won."""
        async with self._write() as conn:
            rec = await self._transition(conn, request_id, action, now, values or {}, expect)
            if rec is not None and audit is not None:
                await self._audit(conn, [audit(rec)])
        return rec

    @shielded
    async def exchange(
        self,
        request_id: str,
        now: float,
        values: Mapping[str, Any],
        expect: Mapping[str, Any],
        audit: AuditFor,
        rows: NewSessionRows,
    ) -> LoginRequest | None:
        """approved → consumed and the new session's rows, in one transaction, or nothing at
        all: a crash cannot leave a consumed request without its session."""
        async with self._write() as conn:
            rec = await self._transition(conn, request_id, Action.EXCHANGE, now, values, expect)
            if rec is None:
                return None
            await self._audit(conn, [audit(rec)])
            await self._insert_session_rows(conn, rows)
        return rec

    @shielded
    async def fail_confirm_code(
        self, request_id: str, now: float, limit: int, audit: AuditFor
    ) -> LoginRequest | None:
        """Count one wrong confirm code; the ``limit``-th burns the request. Exact under races:
        the increment and the burn are one statement."""
        burn = _LR.confirm_attempts + 1 >= limit
        values = {
            "confirm_attempts": _LR.confirm_attempts + 1,
            "status": case((burn, Status.DENIED.value), else_=_LR.status),
            "reason": case((burn, "too_many_attempts"), else_=_LR.reason),
            "finished_at": case((burn, now), else_=_LR.finished_at),
            "version": case((burn, _LR.version + 1), else_=_LR.version),
        }
        where = self._transition_where(request_id, Action.BURN, now, None)
        async with self._write() as conn:
            row = await self._update(conn, login_requests, where, values)
            rec = LoginRequest.from_mapping(row) if row else None
            if rec is not None:
                entry = audit(rec)
                burned = None
                if entry is not None and rec.status == Status.DENIED.value:
                    burned = replace(entry, event="request.denied", detail="too_many_attempts")
                await self._audit(conn, [entry, burned])
        return rec

    @shielded
    async def expire_due(self, now: float, audit: AuditFor, batch: int = 500) -> list[LoginRequest]:
        """Write ``expired`` on live requests past their lifetime (readers already treat them as
        expired); one audit row each, in bounded batches."""
        due = (
            select(_LR.id)
            .where(_LR.status.in_([s.value for s in LIVE]), _LR.expires_at <= now)
            .limit(batch)
        )
        async with self._write() as conn:
            rows = (
                (
                    await conn.execute(
                        login_requests.update()
                        .where(_LR.id.in_(due), _LR.status.in_([s.value for s in LIVE]))
                        .values(
                            status=Status.EXPIRED.value, version=_LR.version + 1, finished_at=now
                        )
                        .returning(*login_requests.c)
                    )
                )
                .mappings()
                .all()
            )
            expired = [LoginRequest.from_mapping(r) for r in rows]
            await self._audit(conn, [audit(r) for r in expired])
        return expired
