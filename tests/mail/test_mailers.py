"""Outgoing mail: QRLOGIN_SMTP_URL parsing, real SMTP delivery, and the console/dev outbox."""

from __future__ import annotations

import asyncio

import pytest

from qrlogin.mail import Mail, OutboxMailer, SmtpMailer, SmtpTarget, parse_smtp_url
from support import SmtpSink, free_port, mail_text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://mail.example.com:2525",
            SmtpTarget("mail.example.com", 2525, False, None, None, None),
        ),
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25, False, None, None, None)),
        ("smtps://mail.example.com", SmtpTarget("mail.example.com", 465, True, None, None, None)),
        (
            "smtps://mail.example.com:4650",
            SmtpTarget("mail.example.com", 4650, True, None, None, None),
        ),
        (
            "smtp://mail.example.com:587?starttls=always",
            SmtpTarget("mail.example.com", 587, False, True, None, None),
        ),
        (
            "smtp://127.0.0.1:1025?starttls=never",
            SmtpTarget("127.0.0.1", 1025, False, False, None, None),
        ),
        (
            "smtp://mail.example.com:587?starttls=auto",
            SmtpTarget("mail.example.com", 587, False, None, None, None),
        ),
        (
            "smtp://[2001:db8::25]:587",
            SmtpTarget("2001:db8::25", 587, False, None, None, None),
        ),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


def test_credentials_in_the_url_are_percent_decoded() -> None:
    target = parse_smtp_url("smtp://mailer%40example.com:p%40ss%3Aw%2Fd@mail.example.com:587")
    assert target.username == "mailer@example.com"
    assert target.password == "p@ss:w/d"
    assert (target.host, target.port) == ("mail.example.com", 587)


def test_credentials_from_settings_when_the_url_has_none() -> None:
    target = parse_smtp_url("smtps://mail.example.com", "from-settings", "secret-from-settings")
    assert target.username == "from-settings"
    assert target.password == "secret-from-settings"
    assert target.use_tls is True


def test_credentials_in_the_url_win_over_settings() -> None:
    target = parse_smtp_url("smtp://url-user:url-pass@mail.example.com", "settings", "other")
    assert (target.username, target.password) == ("url-user", "url-pass")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.com:25", "QRLOGIN_SMTP_URL must look like smtp://host:port"),
        ("mail.example.com:25", "QRLOGIN_SMTP_URL must look like smtp://host:port"),
        ("smtp://", "QRLOGIN_SMTP_URL must look like smtp://host:port"),
        ("smtp:///path-only", "QRLOGIN_SMTP_URL must look like smtp://host:port"),
        ("", "QRLOGIN_SMTP_URL must look like smtp://host:port"),
        ("smtp://mail.example.com:twentyfive", "QRLOGIN_SMTP_URL has a bad port"),
        ("smtp://mail.example.com:99999", "QRLOGIN_SMTP_URL has a bad port"),
        ("smtp://mail.example.com?starttls=alwyas", "starttls must be always, never or auto"),
    ],
)
def test_bad_urls_raise_value_error_with_a_clear_message(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_smtp_url(url)


def test_a_bad_url_does_not_echo_its_password() -> None:
    with pytest.raises(ValueError) as caught:
        parse_smtp_url("smtp://user:hunter2@mail.example.com:notaport")
    assert "hunter2" not in str(caught.value)
    assert "QRLOGIN_SMTP_URL" in str(caught.value)


async def test_smtp_mailer_delivers_to_a_real_smtp_server(smtp_sink: SmtpSink) -> None:
    mailer = SmtpMailer(parse_smtp_url(smtp_sink.url), "qrlogin <no-reply@login.example>")
    body = "Your code is 123456\n\nOpen https://login.example/auth/email/abc to sign in.\n"

    await mailer.send(Mail("ada@example.com", "123456 is your sign-in code", body))

    msg = await asyncio.to_thread(smtp_sink.latest_to, "ada@example.com")
    assert msg["Subject"] == "123456 is your sign-in code"
    assert msg["To"] == "ada@example.com"
    assert msg["From"] == "qrlogin <no-reply@login.example>"
    assert mail_text(msg).replace("\r\n", "\n").strip() == body.strip()
    assert len(smtp_sink) == 1


async def test_smtp_mailer_with_starttls_never_and_unicode(smtp_sink: SmtpSink) -> None:
    mailer = SmtpMailer(parse_smtp_url(smtp_sink.url + "?starttls=never"), "no-reply@x.example")

    await mailer.send(Mail("zoe@example.com", "Grüße — dein Code", "Code: 654321 ✓\n"))
    await mailer.send(Mail("bob@example.com", "second", "two\n"))

    msg = await asyncio.to_thread(smtp_sink.latest_to, "zoe@example.com")
    assert msg["Subject"] == "Grüße — dein Code"
    assert "Code: 654321 ✓" in mail_text(msg)
    second = await asyncio.to_thread(smtp_sink.latest_to, "bob@example.com")
    assert second["Subject"] == "second"
    assert len(smtp_sink) == 2


async def test_smtp_mailer_raises_when_no_server_listens() -> None:
    mailer = SmtpMailer(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}"), "no-reply@x.example")
    with pytest.raises(OSError):
        await mailer.send(Mail("ada@example.com", "s", "t"))


async def test_outbox_keeps_the_newest_first_and_prints_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbox = OutboxMailer(keep=3)
    for i in range(5):
        await outbox.send(Mail(f"user{i}@example.com", f"subject {i}", f"code {i}00000\n"))

    assert [m.to for m in outbox.outbox] == [
        "user4@example.com",
        "user3@example.com",
        "user2@example.com",
    ]
    out, err = capsys.readouterr()
    assert out == ""
    for i in range(5):
        assert f"mail to user{i}@example.com: subject {i}" in err
        assert f"code {i}00000" in err
    assert err.index("user0@example.com") < err.index("user4@example.com")
