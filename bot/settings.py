"""All configuration, from the environment and an optional `.env` file (pydantic-settings).

Names follow each platform's conventions (`SLACK_BOT_TOKEN`, `MicrosoftAppId`) and `SCIM_HELP_*` for our
own. An invalid value stops the start with a message naming the setting; `scim-help config` prints the
effective values with secrets masked. `.env.example` documents every setting and is checked against this
file by the tests.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "scim-help"


class Settings(BaseSettings):
    # env_ignore_empty: `SLACK_BOT_TOKEN=` (a copied .env.example, an empty Kubernetes Secret key) means
    # "not set", not "set to the empty string" — otherwise an empty token would switch Slack on.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    # -- core ------------------------------------------------------------------------------------
    knowledge: Path | None = Field(None, validation_alias="SCIM_HELP_KNOWLEDGE")
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias="SCIM_HELP_DATA_DIR")
    store: Literal["sqlite", "redis"] = Field("sqlite", validation_alias="SCIM_HELP_STORE")
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="SCIM_HELP_REDIS_URL")
    conversation_ttl: int = Field(24 * 3600, ge=60, validation_alias="SCIM_HELP_CONVERSATION_TTL")
    support_url: str | None = Field(None, validation_alias="SCIM_HELP_SUPPORT_URL")

    # -- server ----------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", validation_alias="SCIM_HELP_HOST")
    # 0 picks a free port (the start-up line prints the real URL).
    port: int = Field(8080, ge=0, le=65535, validation_alias=AliasChoices("PORT", "SCIM_HELP_PORT"))
    # auto (None): on when the server listens on loopback only, or when SCIM_HELP_WEB_IDENTITY_HEADER names
    # the header a reverse proxy sets after signing the user in; off otherwise. true/false: always on/off.
    web_chat: bool | None = Field(None, validation_alias="SCIM_HELP_WEB_CHAT")
    # A header set by an authenticating reverse proxy (oauth2-proxy: X-Forwarded-Email): web chat requests
    # without it are refused, and a conversation belongs to the identity that started it.
    web_identity_header: str | None = Field(None, validation_alias="SCIM_HELP_WEB_IDENTITY_HEADER")
    # Addresses (IPs or CIDRs, comma-separated) of that proxy: the identity header and X-Forwarded-For are
    # believed only from them. Empty: from any peer (then only the proxy may be able to reach the bot).
    trusted_proxies: str = Field("", validation_alias="SCIM_HELP_TRUSTED_PROXIES")
    # Per client (identity, else address) and per process: new web conversations and messages per minute,
    # and the web conversations kept live at once.
    web_new_per_minute: int = Field(10, ge=1, le=10_000, validation_alias="SCIM_HELP_WEB_NEW_PER_MINUTE")
    web_turns_per_minute: int = Field(60, ge=1, le=100_000, validation_alias="SCIM_HELP_WEB_TURNS_PER_MINUTE")
    web_max_conversations: int = Field(2000, ge=1, le=1_000_000, validation_alias="SCIM_HELP_WEB_MAX_CONVERSATIONS")
    # Key for web chat conversation ids and for the hashes that stand for them in logs. Empty: a random key
    # kept in SCIM_HELP_DATA_DIR/secret.key (0600). Replicas that do not share a data dir need the same key.
    secret_key: SecretStr | None = Field(None, validation_alias="SCIM_HELP_SECRET_KEY")
    log_format: Literal["text", "json"] = Field("text", validation_alias="SCIM_HELP_LOG_FORMAT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="SCIM_HELP_LOG_LEVEL")
    # Seconds `serve` waits for turns in flight after SIGTERM before closing (keep below the platform's
    # grace period: Kubernetes' terminationGracePeriodSeconds, docker's stop timeout).
    shutdown_timeout: float = Field(20.0, ge=0, le=600, validation_alias="SCIM_HELP_SHUTDOWN_TIMEOUT")
    # Extra origins (comma-separated, e.g. `https://intranet.example.com`) allowed to POST to the web chat
    # API; the page's own origin is always allowed.
    allowed_origins: str = Field("", validation_alias="SCIM_HELP_ALLOWED_ORIGINS")
    # Server processes sharing the port (SO_REUSEPORT) and the store: one event loop per CPU core.
    workers: int = Field(1, ge=1, le=64, validation_alias="SCIM_HELP_WORKERS")
    # Processes that only run Slack's recorded requests (0: each worker runs what it records). With
    # processors, the workers only record and acknowledge, so an ack never waits behind a turn.
    processors: int = Field(0, ge=0, le=64, validation_alias="SCIM_HELP_PROCESSORS")

    # -- Slack -----------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_mode: Literal["http", "socket"] = Field("http", validation_alias="SCIM_HELP_SLACK_MODE")
    slack_api_url: str | None = Field(None, validation_alias="SCIM_HELP_SLACK_API_URL")
    slack_channels: str = Field("", validation_alias="SCIM_HELP_SLACK_CHANNELS")
    escalation_channel: str | None = Field(None, validation_alias="SCIM_HELP_ESCALATION_CHANNEL")

    # -- Microsoft Teams ---------------------------------------------------------------------------
    microsoft_app_id: str | None = Field(None, validation_alias="MicrosoftAppId")
    microsoft_app_password: SecretStr | None = Field(None, validation_alias="MicrosoftAppPassword")
    microsoft_app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        "MultiTenant", validation_alias="MicrosoftAppType"
    )
    microsoft_app_tenant_id: str | None = Field(None, validation_alias="MicrosoftAppTenantId")
    teams_escalation_channel: str | None = Field(None, validation_alias="SCIM_HELP_TEAMS_ESCALATION_CHANNEL")

    # -- Microsoft Graph (optional, read-only: Entra checks answered by looking; bot/graph/) ----------
    graph_tenant_id: str | None = Field(None, validation_alias="SCIM_HELP_GRAPH_TENANT_ID")
    graph_client_id: str | None = Field(None, validation_alias="SCIM_HELP_GRAPH_CLIENT_ID")
    graph_client_secret: SecretStr | None = Field(None, validation_alias="SCIM_HELP_GRAPH_CLIENT_SECRET")
    # Object id of the Cato provisioning app's service principal (Enterprise applications > Properties).
    graph_service_principal_id: str | None = Field(None, validation_alias="SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID")
    graph_url: str = Field("https://graph.microsoft.com", validation_alias="SCIM_HELP_GRAPH_URL")
    graph_authority: str = Field("https://login.microsoftonline.com", validation_alias="SCIM_HELP_GRAPH_AUTHORITY")

    @field_validator("slack_api_url", "support_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("graph_url", "graph_authority")
    @classmethod
    def _https_url(cls, v: str) -> str:
        # MSAL accepts only https authorities, and a bearer token never travels in clear text.
        if not v.startswith("https://") or len(v) <= len("https://"):
            raise ValueError("must be an https:// URL")
        return v.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return v

    @model_validator(mode="after")
    def _slack_complete(self) -> Settings:
        if self.slack_bot_token and self.slack_mode == "http" and not self.slack_signing_secret:
            raise ValueError("SLACK_SIGNING_SECRET is required when SLACK_BOT_TOKEN is set in http mode")
        if self.slack_mode == "socket" and self.slack_bot_token and not self.slack_app_token:
            raise ValueError("SLACK_APP_TOKEN is required when SCIM_HELP_SLACK_MODE=socket")
        if self.microsoft_app_id and self.microsoft_app_type != "UserAssignedMSI" and not self.microsoft_app_password:
            raise ValueError("MicrosoftAppPassword is required when MicrosoftAppId is set")
        if self.microsoft_app_type == "SingleTenant" and self.microsoft_app_id and not self.microsoft_app_tenant_id:
            raise ValueError("MicrosoftAppTenantId is required when MicrosoftAppType=SingleTenant")
        graph = {
            "SCIM_HELP_GRAPH_TENANT_ID": self.graph_tenant_id,
            "SCIM_HELP_GRAPH_CLIENT_ID": self.graph_client_id,
            "SCIM_HELP_GRAPH_CLIENT_SECRET": self.graph_client_secret,
            "SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID": self.graph_service_principal_id,
        }
        if any(graph.values()) and not all(graph.values()):
            missing = ", ".join(k for k, v in graph.items() if not v)
            raise ValueError(f"{missing} required when any SCIM_HELP_GRAPH_* connection setting is set")
        return self

    @field_validator("web_chat", mode="before")
    @classmethod
    def _auto(cls, v: object) -> object:
        return None if isinstance(v, str) and v.strip().lower() in ("auto", "") else v

    @field_validator("web_identity_header")
    @classmethod
    def _header_name(cls, v: str | None) -> str | None:
        if v and not all(c.isalnum() or c == "-" for c in v):
            raise ValueError(f"{v!r} is not an HTTP header name like X-Forwarded-Email")
        return v or None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: str) -> str:
        for item in (i.strip() for i in v.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or CIDR like 10.0.0.0/8") from None
        return v

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(i.strip(), strict=False) for i in self.trusted_proxies.split(",") if i.strip()]

    @property
    def loopback_only(self) -> bool:
        """True when `host` reaches this machine only."""
        if self.host in ("localhost", "ip6-localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def web_chat_on(self) -> bool:
        if self.web_chat is not None:
            return self.web_chat
        return self.loopback_only or self.web_identity_header is not None

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: str) -> str:
        for origin in (o.strip() for o in v.split(",")):
            if origin and (not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2):
                raise ValueError(f"{origin!r} is not an origin like https://chat.example.com")
        return v

    @property
    def allowed_origin_set(self) -> set[str]:
        return {o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip()}

    @property
    def slack_channel_ids(self) -> set[str]:
        return {c.strip() for c in self.slack_channels.split(",") if c.strip()}

    @property
    def slack_processors(self) -> int:
        """Processor processes to run: they run Slack's Events API requests, so none without Slack over
        HTTP (`serve` then says SCIM_HELP_PROCESSORS is ignored)."""
        return self.processors if self.slack_bot_token is not None and self.slack_mode == "http" else 0

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def teams_enabled(self) -> bool:
        # With an app id Teams is authenticated and always served. Without one it is unauthenticated (for
        # the Bot Framework Emulator and the Agents Playground on this machine): served only on a loopback
        # address, never on 0.0.0.0 or a public interface (`serve` says why it is off).
        return bool(self.microsoft_app_id) or self.host_is_loopback

    @property
    def host_is_loopback(self) -> bool:
        import ipaddress

        host = self.host.strip().strip("[]").lower()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def graph_enabled(self) -> bool:
        """The tenant is connected: Entra checks may be answered from Microsoft Graph."""
        return bool(
            self.graph_tenant_id and self.graph_client_id and self.graph_client_secret and self.graph_service_principal_id
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "scim-help.sqlite3"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; raises SettingsError with a readable message naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "configuration"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


class SettingsError(Exception):
    pass


def knowledge_path_from_env() -> str | None:
    # The CLI's pack lookup must not fail on unrelated invalid settings (e.g. `kb check` on a laptop).
    return os.environ.get("SCIM_HELP_KNOWLEDGE") or None


_SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "key", "auth", "credential", "signature", "sig", "code")
MASK = "********"


def mask_url(url: str) -> str:
    """A URL fit to print: userinfo (user:password@) and the values of secret-looking query parameters
    (password, token, key, secret, auth, sig, …) replaced by ********. The host stays, so a reader can
    still tell which server it is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    # Userinfo runs to the last "@" before the query: read leniently, so a password holding "@", "/", "#"
    # or "?" is masked whole rather than split by a stricter parser.
    before_query = rest.split("?", 1)[0]
    if "@" in before_query:
        rest = MASK + "@" + rest[before_query.rindex("@") + 1 :]
    authority, slash, tail = rest.partition("/")
    try:
        parts = urlsplit("x://h/" + tail)
    except ValueError:
        return f"{scheme}://{authority}/{MASK}"
    path = parts.path[1:]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if any(p in k.lower() for p in _SECRET_PARAMS) else v) for k, v in pairs], safe="*")
    fragment = MASK if parts.fragment and any(p in parts.fragment.lower() for p in _SECRET_PARAMS) else parts.fragment
    return f"{scheme}://{authority}{slash}{path}" + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def masked(settings: Settings) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        key = alias.choices[0] if isinstance(alias, AliasChoices) else (alias or name)
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = MASK if value.get_secret_value() else ""
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str) and "://" in value:
            value = mask_url(value)  # every URL setting: Redis, the Slack API, the support portal
        elif name == "web_chat" and value is None:
            value = "auto"
        out[str(key)] = value
    return out


def print_config() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    for key, value in masked(settings).items():
        print(f"{key}={'' if value is None else value}")
    return 0
