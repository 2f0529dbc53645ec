"""Configuration: `.env.example` and `Settings` agree both ways, invalid values name the setting,
`scim-help config` never prints a secret."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices

from bot.settings import Settings, SettingsError, load_settings, masked, print_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"
ASSIGNMENT = re.compile(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def env_names() -> dict[str, set[str]]:
    """field -> every environment name it accepts."""
    out: dict[str, set[str]] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            out[name] = {str(a) for a in alias.choices}
        elif alias:
            out[name] = {str(alias)}
        else:
            out[name] = {name.upper()}
    return out


def all_env_names() -> set[str]:
    return set().union(*env_names().values())


def documented() -> dict[str, tuple[str, int]]:
    """Variables in .env.example (commented-out or not) -> (value, line number)."""
    found: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(EXAMPLE.read_text().splitlines(), 1):
        m = ASSIGNMENT.match(line.strip())
        if m:
            found[m.group(1)] = (m.group(2), lineno)
    return found


def test_every_setting_is_documented_in_env_example():
    names = set(documented())
    missing = {field: sorted(aliases) for field, aliases in env_names().items() if not aliases & names}
    assert not missing, f"settings not documented in .env.example: {missing}"


def test_env_example_documents_only_real_settings():
    unknown = sorted(set(documented()) - all_env_names())
    assert not unknown, f".env.example names variables Settings does not read: {unknown}"


def test_every_documented_setting_has_a_comment_above_it():
    lines = EXAMPLE.read_text().splitlines()
    for name, (_, lineno) in documented().items():
        above = lines[lineno - 2].strip() if lineno >= 2 else ""
        assert above.startswith("#") and not ASSIGNMENT.match(above), f"{name} (line {lineno}) has no explanation above it"


def test_env_example_values_are_the_defaults_and_valid(settings, monkeypatch):
    """Uncommenting every line of .env.example gives a valid configuration equal to the defaults."""
    values = {name: value for name, (value, _) in documented().items()}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    defaults = Settings()  # the settings fixture cleared the environment... until the line above
    for name in ("store", "redis_url", "conversation_ttl", "host", "port", "web_chat", "log_format", "log_level",
                 "shutdown_timeout", "slack_mode", "microsoft_app_type"):
        assert getattr(s, name) == getattr(defaults, name), name
    assert s.slack_enabled is False and s.slack_bot_token is None  # empty means unset


def test_env_file_is_read_from_the_working_directory(settings, tmp_path):
    (tmp_path / ".env").write_text("SCIM_HELP_STORE=redis\nPORT=9191\nSLACK_BOT_TOKEN=\n")
    s = load_settings()
    assert (s.store, s.port, s.slack_enabled) == ("redis", 9191, False)


def test_environment_wins_over_env_file(settings, tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PORT=9191\n")
    monkeypatch.setenv("PORT", "9292")
    assert load_settings().port == 9292


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("SCIM_HELP_STORE", "mongodb"),
        ("SCIM_HELP_REDIS_URL", "localhost:6379"),
        ("SCIM_HELP_CONVERSATION_TTL", "5"),
        ("SCIM_HELP_LOG_LEVEL", "LOUD"),
        ("SCIM_HELP_SHUTDOWN_TIMEOUT", "-3"),
        ("SCIM_HELP_ALLOWED_ORIGINS", "intranet.example.com"),
        ("SCIM_HELP_SUPPORT_URL", "support.example.com"),
        ("SCIM_HELP_SLACK_MODE", "websocket"),
    ],
)
def test_invalid_values_name_the_setting(settings, monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert name in str(exc.value)
    assert print_config() == 2
    captured = capsys.readouterr()
    assert name in captured.err and captured.out == ""


def test_cross_field_rules_name_the_missing_setting(settings, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SCIM_HELP_SLACK_MODE", "socket")
    with pytest.raises(SettingsError, match="SLACK_APP_TOKEN"):
        load_settings()
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.setenv("MicrosoftAppId", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(SettingsError, match="MicrosoftAppPassword"):
        load_settings()


def test_processors_run_only_with_slack_over_http(settings, monkeypatch):
    """Processor processes run Slack's recorded Events API requests: without Slack (or with Socket Mode)
    none is started, so one docker-compose file serves deployments with and without Slack."""
    monkeypatch.setenv("SCIM_HELP_PROCESSORS", "2")
    assert load_settings().slack_processors == 0
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s" * 20)
    assert load_settings().slack_processors == 2
    monkeypatch.setenv("SCIM_HELP_SLACK_MODE", "socket")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert load_settings().slack_processors == 0


SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-111-222-SeCrEtBoTtOkEn",
    "SLACK_SIGNING_SECRET": "5ign1ngS3cretValue0000",
    "SLACK_APP_TOKEN": "xapp-1-A0-SeCrEtAppToken",
    "MicrosoftAppPassword": "Ms~AppPassword.Secret_42",
}
REDIS_PASSWORD = "r3dis-Pa55word"


def _secret_env(monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("SCIM_HELP_REDIS_URL", f"redis://default:{REDIS_PASSWORD}@cache.internal:6380/2")


def test_config_masks_every_secret(settings, monkeypatch, capsys):
    _secret_env(monkeypatch)
    assert print_config() == 0
    out = capsys.readouterr().out
    for value in [*SECRETS.values(), REDIS_PASSWORD]:
        assert value not in out
    lines = dict(line.split("=", 1) for line in out.splitlines())
    for name in SECRETS:
        assert lines[name] == "********"
    assert lines["SCIM_HELP_REDIS_URL"] == "redis://********@cache.internal:6380/2"
    assert lines["MicrosoftAppId"] == "11111111-2222-3333-4444-555555555555"  # not a secret
    assert set(lines) == set(masked(load_settings()))  # every setting printed, once


def test_config_command_as_a_process_masks_secrets(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft")) and k != "PORT"}
    env.update(SECRETS)
    env["SCIM_HELP_REDIS_URL"] = f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0"
    env["SCIM_HELP_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for value in [*SECRETS.values(), REDIS_PASSWORD]:
        assert value not in proc.stdout and value not in proc.stderr
    assert "SLACK_BOT_TOKEN=********" in proc.stdout


def test_masked_lists_every_setting(settings):
    keys = set(masked(settings))
    for field, aliases in env_names().items():
        assert keys & aliases, field


def test_new_server_settings(settings, monkeypatch):
    s = load_settings()
    assert s.shutdown_timeout == 20.0 and s.allowed_origin_set == set()
    monkeypatch.setenv("SCIM_HELP_ALLOWED_ORIGINS", "https://Intranet.example.com/, http://localhost:3000")
    monkeypatch.setenv("PORT", "0")  # 0 = any free port
    s = load_settings()
    assert s.allowed_origin_set == {"https://intranet.example.com", "http://localhost:3000"}
    assert s.port == 0


def test_config_masks_credentials_in_every_url_setting(tmp_path):
    """Break 11: `scim-help config` printed userinfo in SCIM_HELP_SLACK_API_URL, a Redis ?password=, the
    part of a Redis password after an @, and a token in SCIM_HELP_SUPPORT_URL."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft"))}
    env.update(
        SCIM_HELP_DATA_DIR=str(tmp_path / "data"),
        SCIM_HELP_STORE="redis",
        SCIM_HELP_REDIS_URL="redis://default:p4ss@w0rd-tail@redis.internal:6379/0?password=hunter2&socket_timeout=3",
        SCIM_HELP_SLACK_API_URL="https://proxyuser:proxyp4ss@slack-proxy.internal/api/",
        SCIM_HELP_SUPPORT_URL="https://support.example.com/new?lang=en&access_token=tok3n-value#sig=abc",
        SLACK_BOT_TOKEN="xoxb-1-secret",
        SLACK_SIGNING_SECRET="signing-secret-value",
    )
    out = subprocess.run([sys.executable, "-m", "bot.cli", "config"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for secret in ("p4ss", "w0rd-tail", "hunter2", "proxyuser", "proxyp4ss", "tok3n-value", "sig=abc", "xoxb-1-secret", "signing-secret-value"):
        assert secret not in out.stdout, f"{secret!r} printed by scim-help config"
    shown = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert shown["SCIM_HELP_REDIS_URL"].startswith("redis://********@redis.internal:6379/0?")
    assert "socket_timeout=3" in shown["SCIM_HELP_REDIS_URL"]
    assert shown["SCIM_HELP_SLACK_API_URL"] == "https://********@slack-proxy.internal/api/"
    assert shown["SCIM_HELP_SUPPORT_URL"].startswith("https://support.example.com/new?lang=en&access_token=********")
