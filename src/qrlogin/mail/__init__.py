"""Outgoing mail: SMTP when ``QRLOGIN_SMTP_URL`` is set, else the console and the dev outbox."""

from qrlogin.mail.mailers import Mail, Mailer, OutboxMailer, SmtpMailer, SmtpTarget, parse_smtp_url

__all__ = ["Mail", "Mailer", "OutboxMailer", "SmtpMailer", "SmtpTarget", "parse_smtp_url"]
