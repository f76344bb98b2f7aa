"""Each record the store hands out has exactly its table's columns (STYLE.md: one shape per
concept, and a test that the record and the table agree)."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest
from sqlalchemy import Table

from qrlogin.store import records, tables

RECORD_TABLES = [
    (records.User, tables.users),
    (records.LoginRequest, tables.login_requests),
    (records.Session, tables.sessions),
    (records.EmailLogin, tables.email_logins),
    (records.RefreshToken, tables.refresh_tokens),
    (records.AuditEntry, tables.audit_events),
    (records.KnownBrowser, tables.known_browsers),
    (records.OAuthClient, tables.oauth_clients),
    (records.SigningKey, tables.signing_keys),
    (records.AuthorizationCode, tables.oauth_codes),
    (records.Consent, tables.oauth_consents),
    (records.Passkey, tables.passkeys),
    (records.TotpFactor, tables.totp_factors),
    (records.RecoveryCode, tables.recovery_codes),
    (records.FactorChallenge, tables.factor_challenges),
]


@pytest.mark.parametrize(("record", "table"), RECORD_TABLES, ids=[t.name for _, t in RECORD_TABLES])
def test_a_record_has_exactly_its_tables_columns(record: type, table: Table) -> None:
    assert {f.name for f in fields(record)} == {c.name for c in table.columns}


def test_every_table_has_a_record() -> None:
    assert {t.name for _, t in RECORD_TABLES} == set(tables.metadata.tables)


@pytest.mark.parametrize(("record", "table"), RECORD_TABLES, ids=[t.name for _, t in RECORD_TABLES])
def test_a_field_without_a_default_is_a_column_that_cannot_be_null(
    record: type, table: Table
) -> None:
    required = {f.name for f in fields(record) if f.default is MISSING}
    nullable = {c.name for c in table.columns if c.nullable and not c.primary_key}
    assert not required & nullable
