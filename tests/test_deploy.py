"""deploy/: Docker can't run here, so the files are parsed and checked against what the code really reads
and serves — env var names exist in Settings, ports agree, probes hit real routes of build_app, the image
runs as a non-root user with a HEALTHCHECK."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from bot.server import build_app
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# Environment variables the image sets for Python/pip, not for scim-help.
RUNTIME_ENV = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}


def setting_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(a) for a in alias.choices}
        else:
            names.add(str(alias or name))
    return names


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


def kind(name: str, component: str | None = None) -> list[dict]:
    out = [d for d in k8s_docs() if d.get("kind") == name]
    if component:
        out = [d for d in out if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
    return out


def bot_deployment() -> dict:
    (dep,) = [d for d in kind("Deployment") if d["metadata"]["name"] == "scim-help"]
    return dep


def bot_container() -> dict:
    (container,) = bot_deployment()["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture
async def routes(make_runtime, bundle, monkeypatch):
    monkeypatch.setattr("bot.runtime.load_pack", lambda path=None: bundle)
    rt = make_runtime()
    app = build_app(rt)
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    await rt.close()
    return paths


# ---- Dockerfile -------------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, rest in dockerfile():
        if instr == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def test_dockerfile_base_install_and_entrypoint():
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for instr, rest in steps if instr == "RUN")
    assert "pip install ." in runs
    assert "playwright" not in runs and "curl" not in runs
    cmd = [rest for instr, rest in steps if instr == "CMD"][-1]
    assert cmd == '["scim-help", "serve"]'
    copies = [rest for instr, rest in steps if instr == "COPY"]
    for needed in ("pyproject.toml", "bot", "knowledge"):
        assert any(needed in c.split() or f"{needed} " in c for c in copies), needed
    # pyproject.toml names README.md as the readme: the build needs it in the context.
    assert any("README.md" in c for c in copies)


def test_dockerfile_user_is_not_root():
    users = [rest for instr, rest in dockerfile() if instr == "USER"]
    assert users, "no USER instruction: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The uid matches the Kubernetes securityContext (runAsNonRoot needs a numeric uid to verify).
    assert user == str(bot_deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
    # The user exists: created in a RUN step with that uid.
    assert any(f"--uid {user}" in rest for instr, rest in dockerfile() if instr == "RUN")


def test_dockerfile_healthcheck_uses_python_on_healthz(routes):
    checks = [rest for instr, rest in dockerfile() if instr == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check and '"python"' in check and "urllib.request" in check
    path = re.search(r"127\.0\.0\.1:%s(/\w+)", check).group(1)
    assert path == "/healthz" and path in routes


def test_dockerfile_env_port_host_and_volume():
    env = dockerfile_env()
    unknown = sorted(set(env) - setting_names() - RUNTIME_ENV)
    assert not unknown, f"Dockerfile sets variables Settings does not read: {unknown}"
    assert env["SCIM_HELP_HOST"] == "0.0.0.0"
    port = int(env.get("PORT", Settings.model_fields["port"].default))
    exposes = [rest for instr, rest in dockerfile() if instr == "EXPOSE"]
    assert exposes == [str(port)] and port == 8080
    volumes = [rest for instr, rest in dockerfile() if instr == "VOLUME"]
    assert volumes and env["SCIM_HELP_DATA_DIR"] in volumes[0]


# ---- docker compose -----------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_bot_with_redis():
    c = compose()
    bot, redis = c["services"]["bot"], c["services"]["redis"]
    assert bot["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / bot["build"]["context"] / bot["build"]["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    env = bot["environment"]
    assert env["SCIM_HELP_STORE"] == "redis"
    assert env["SCIM_HELP_REDIS_URL"].startswith("redis://redis:6379")
    assert set(env) <= setting_names(), sorted(set(env) - setting_names())
    # The values are valid too. Settings takes them by their environment names (validation aliases), which
    # its typed __init__ does not list, so a dict[str, str] would be checked against options like
    # _case_sensitive: bool | None; Any says "checked at run time by pydantic", as in test_graph's graph_env.
    values: dict[str, Any] = {k: str(v) for k, v in env.items()}
    Settings(**values)
    assert redis["image"].startswith("redis:")
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy" and "healthcheck" in redis


def test_compose_ports_match_the_app():
    bot = compose()["services"]["bot"]
    port = int(bot["environment"]["PORT"])
    (mapping,) = bot["ports"]
    assert int(str(mapping).rsplit(":", 1)[1]) == port == 8080
    assert any(str(v).endswith(":/data") for v in bot["volumes"])


# ---- Kubernetes ---------------------------------------------------------------------------------------------


def test_k8s_files_parse_and_kustomization_lists_them():
    docs = k8s_docs()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "Secret", "Kustomization"}
    (kust,) = kind("Kustomization")
    listed = set(kust["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_deployment_has_replicas_sharing_redis():
    dep = bot_deployment()
    assert dep["spec"]["replicas"] >= 2
    (config,) = kind("ConfigMap")
    assert config["data"]["SCIM_HELP_STORE"] == "redis"
    host = re.match(r"rediss?://(?:[^@]*@)?([^:/]+)", config["data"]["SCIM_HELP_REDIS_URL"]).group(1)
    redis_services = [s for s in kind("Service") if s["metadata"]["name"] == host]
    assert redis_services, f"no Service named {host} (or use a managed Redis and change the URL)"
    assert redis_services[0]["spec"]["ports"][0]["port"] == 6379


def test_configmap_and_secret_hold_only_real_settings():
    (config,) = kind("ConfigMap")
    (secret,) = kind("Secret")
    names = setting_names()
    assert set(config["data"]) <= names, sorted(set(config["data"]) - names)
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert secret_keys <= names, sorted(secret_keys - names)
    Settings(**{k: v for k, v in config["data"].items()})  # valid as written
    # Tokens are in the Secret, never in the ConfigMap.
    secret_fields = {
        str(f.validation_alias) for f in Settings.model_fields.values() if "SecretStr" in str(f.annotation)
    }
    assert secret_fields <= secret_keys
    assert not (secret_fields & set(config["data"]))


def test_container_env_comes_from_configmap_and_secret():
    container = bot_container()
    refs = container["envFrom"]
    assert {"configMapRef", "secretRef"} <= {k for r in refs for k in r}
    (config,) = kind("ConfigMap")
    (secret,) = kind("Secret")
    assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} == {config["metadata"]["name"]}
    assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} == {secret["metadata"]["name"]}
    for env in container.get("env", []):
        assert env["name"] in setting_names()


def test_ports_agree_everywhere():
    (config,) = kind("ConfigMap")
    port = int(config["data"]["PORT"])
    container = bot_container()
    (cport,) = container["ports"]
    assert cport["containerPort"] == port == 8080
    (svc,) = [s for s in kind("Service") if s["metadata"]["name"] == "scim-help"]
    target = svc["spec"]["ports"][0]["targetPort"]
    assert target in (cport["name"], port)
    assert svc["spec"]["selector"].items() <= bot_deployment()["spec"]["template"]["metadata"]["labels"].items()
    assert bot_deployment()["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_probes_hit_real_routes(routes):
    container = bot_container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["path"] in routes
            assert container[probe]["httpGet"]["port"] in ("http", 8080)
    assert bot_deployment()["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] in routes


def test_pods_run_as_non_root_with_limits():
    for dep in kind("Deployment"):
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for c in spec["containers"]:
            assert c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"]
            assert c["resources"]["requests"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_no_service_links_to_collide_with_settings():
    """A Service named scim-help would inject SCIM_HELP_PORT=tcp://… into every pod."""
    for dep in kind("Deployment"):
        assert dep["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_grace_period_covers_the_shutdown_timeout():
    (config,) = kind("ConfigMap")
    grace = bot_deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(config["data"]["SCIM_HELP_SHUTDOWN_TIMEOUT"])
    stop = compose()["services"]["bot"]["stop_grace_period"]
    assert int(stop.rstrip("s")) > float(compose()["services"]["bot"]["environment"]["SCIM_HELP_SHUTDOWN_TIMEOUT"])


def test_writable_paths_are_volumes_with_read_only_root():
    container = bot_container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (config,) = kind("ConfigMap")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config["data"]["SCIM_HELP_DATA_DIR"] in mounts and "/tmp" in mounts
