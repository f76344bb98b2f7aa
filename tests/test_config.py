"""Settings: QRLOGIN_* environment variables, a TOML file, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrlogin.config import ConfigError, Settings, load_settings
from qrlogin.web.app import create_app
from qrlogin.web.security import CookieNames


def test_defaults_without_any_configuration() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.confirm == "code"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.rate_limits is True
    assert settings.resolved_database_url == (
        f"sqlite:///{(Path('.qrlogin') / 'qrlogin.db').resolve()}"
    )


def test_environment_variables(tmp_path: Path) -> None:
    env = {
        "QRLOGIN_DATA_DIR": str(tmp_path / "data"),
        "QRLOGIN_DATABASE_URL": "postgresql+asyncpg://db.internal/qrlogin",
        "QRLOGIN_REDIS_URL": "redis://cache.internal:6379/0",
        "QRLOGIN_PUBLIC_URL": "https://login.example.com/",
        "QRLOGIN_SECRET_KEY": "k" * 40,
        "QRLOGIN_SMTP_URL": "smtps://mail.example.com",
        "QRLOGIN_CONFIRM": "auto",
        "QRLOGIN_USER_CODE_FORMAT": "base20",
        "QRLOGIN_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.0/8 ,",
        "QRLOGIN_SESSION_LIFETIME": "3600",
        "QRLOGIN_DEV": "yes",
        "QRLOGIN_RATE_LIMITS": "off",
        "QRLOGIN_SITE_NAME": "Example",
        "UNRELATED": "ignored",
    }
    s = load_settings(env=env)
    assert s.data_dir == tmp_path / "data"
    assert s.database_url == "postgresql+asyncpg://db.internal/qrlogin"
    assert s.resolved_database_url == "postgresql+asyncpg://db.internal/qrlogin"
    assert s.redis_url == "redis://cache.internal:6379/0"
    assert s.public_url == "https://login.example.com"  # trailing slash dropped
    assert s.key_bytes() == b"k" * 40
    assert s.smtp_url == "smtps://mail.example.com"
    assert s.confirm == "auto"
    assert s.user_code_format == "base20"
    assert s.trusted_proxies == ("10.0.0.1", "10.0.0.0/8")
    assert s.session_lifetime == 3600
    assert s.dev is True
    assert s.rate_limits is False
    assert s.site_name == "Example"


def test_environment_is_read_from_os_environ_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QRLOGIN_CONFIRM", "tap")
    monkeypatch.setenv("QRLOGIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QRLOGIN_PUBLIC_URL", "")  # empty means unset
    s = load_settings()
    assert s.confirm == "tap"
    assert s.data_dir == tmp_path
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'qrlogin.db').resolve()}"


def test_toml_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "qrlogin.toml"
    config.write_text(
        'public_url = "https://id.example.org"\n'
        'confirm = "tap"\n'
        'site_name = "From the file"\n'
        'trusted_proxies = ["192.0.2.1", "198.51.100.0/24"]\n'
        "session_lifetime = 7200\n"
        "rate_limits = false\n"
        "dev = true\n"
        f'data_dir = "{tmp_path / "from-file"}"\n',
        encoding="utf-8",
    )

    only_file = load_settings(config_file=config, env={})
    assert only_file.public_url == "https://id.example.org"
    assert only_file.confirm == "tap"
    assert only_file.site_name == "From the file"
    assert only_file.trusted_proxies == ("192.0.2.1", "198.51.100.0/24")
    assert only_file.session_lifetime == 7200
    assert only_file.rate_limits is False
    assert only_file.dev is True
    assert only_file.data_dir == tmp_path / "from-file"

    env = {"QRLOGIN_CONFIRM": "auto", "QRLOGIN_SITE_NAME": "From the environment"}
    with_env = load_settings(config_file=config, env=env)
    assert with_env.confirm == "auto"  # the environment beats the file
    assert with_env.site_name == "From the environment"
    assert with_env.public_url == "https://id.example.org"  # untouched keys stay from the file

    overridden = load_settings(
        config_file=config, env=env, confirm="code", public_url=None, dev=None
    )
    assert overridden.confirm == "code"  # explicit overrides beat both
    assert overridden.public_url == "https://id.example.org"  # None overrides nothing
    assert overridden.dev is True


def test_unknown_key_in_the_toml_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "qrlogin.toml"
    config.write_text('confirm = "tap"\nconfrim = "code"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'confrim'"):
        load_settings(config_file=config, env={})


@pytest.mark.parametrize("bad", ["always", "CODE", "none", "tapp"])
def test_bad_confirm_policy_names_the_variable_and_the_choices(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"QRLOGIN_CONFIRM": bad})
    message = str(caught.value)
    assert "QRLOGIN_CONFIRM" in message
    assert "code, tap, auto" in message
    assert repr(bad) in message


def test_bad_confirm_in_the_toml_file_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "qrlogin.toml"
    config.write_text('confirm = "sometimes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="QRLOGIN_CONFIRM must be one of code, tap, auto"):
        load_settings(config_file=config, env={})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("bad", ["login.example.com", "ftp://login.example.com", "//x"])
def test_public_url_must_be_http_or_https(bad: str) -> None:
    with pytest.raises(ConfigError, match="QRLOGIN_PUBLIC_URL must start with http"):
        load_settings(env={"QRLOGIN_PUBLIC_URL": bad})


def test_session_lifetime_must_be_a_whole_number() -> None:
    with pytest.raises(ConfigError, match="QRLOGIN_SESSION_LIFETIME must be a whole number"):
        load_settings(env={"QRLOGIN_SESSION_LIFETIME": "a month"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("off", False), ("no", False)],
)
def test_boolean_variables(raw: str, expected: bool) -> None:
    assert load_settings(env={"QRLOGIN_RATE_LIMITS": raw}).rate_limits is expected
    assert load_settings(env={"QRLOGIN_DEV": raw}).dev is expected


def test_https_public_url_gives_host_prefixed_cookies(tmp_path: Path) -> None:
    https = load_settings(env={"QRLOGIN_PUBLIC_URL": "https://login.example.com"})
    assert https.https is True
    names = CookieNames.for_https(https.https)
    assert names.session == "__Host-qrl_session"
    assert names.requester == "__Host-qrl_requester"
    assert names.browser == "__Host-qrl_browser"
    assert names.csrf == "__Host-qrl_csrf"

    plain = load_settings(env={"QRLOGIN_PUBLIC_URL": "http://192.168.1.20:8000"})
    assert plain.https is False
    assert CookieNames.for_https(plain.https).session == "qrl_session"

    # and the app picks its cookie names from its settings
    app = create_app(Settings(data_dir=tmp_path, public_url="https://login.example.com"))
    assert app.state.cookie_names == names
    app = create_app(Settings(data_dir=tmp_path, public_url="http://127.0.0.1:8000"))
    assert app.state.cookie_names == CookieNames.for_https(False)


def test_secret_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    s = load_settings(env={"QRLOGIN_DATA_DIR": str(tmp_path / "d")})
    first = s.key_bytes()
    assert len(first) >= 48
    key_file = tmp_path / "d" / "secret_key"
    assert key_file.read_text().strip().encode() == first
    assert key_file.stat().st_mode & 0o077 == 0  # readable by the owner only
    assert load_settings(env={"QRLOGIN_DATA_DIR": str(tmp_path / "d")}).key_bytes() == first
    assert load_settings(env={"QRLOGIN_DATA_DIR": str(tmp_path / "e")}).key_bytes() != first


def test_connection_limits_and_ipv6_prefix_are_read_from_the_environment() -> None:
    """Issue 11 items 5 and 9."""
    settings = load_settings(
        env={
            "QRLOGIN_HEADER_TIMEOUT": "2.5",
            "QRLOGIN_BODY_TIMEOUT": "3",
            "QRLOGIN_KEEPALIVE_TIMEOUT": "4",
            "QRLOGIN_MAX_CONNECTIONS": "100",
            "QRLOGIN_IPV6_PREFIX": "56",
        }
    )
    assert (settings.header_timeout, settings.body_timeout, settings.keepalive_timeout) == (
        2.5,
        3.0,
        4.0,
    )
    assert (settings.max_connections, settings.ipv6_prefix) == (100, 56)
    defaults = load_settings(env={})
    assert (defaults.header_timeout, defaults.body_timeout, defaults.keepalive_timeout) == (
        10.0,
        10.0,
        5.0,
    )
    assert (defaults.max_connections, defaults.ipv6_prefix) == (4096, 64)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HEADER_TIMEOUT", "0"),
        ("BODY_TIMEOUT", "-1"),
        ("KEEPALIVE_TIMEOUT", "soon"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "many"),
        ("IPV6_PREFIX", "129"),
        ("IPV6_PREFIX", "0"),
    ],
)
def test_bad_connection_limits_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"QRLOGIN_{name}"):
        load_settings(env={f"QRLOGIN_{name}": raw})
