"""deploy/compose: two gateway replicas, Redis with AOF, Caddy in front; the config loads with the
env example."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import ConfigError, load_settings
from tests.deploy.support import COMPOSE, app_paths, load_yaml, references

SPEC: dict[str, Any] = load_yaml(COMPOSE / "compose.yaml")[0]
SERVICES: dict[str, Any] = SPEC["services"]
GATEWAYS = sorted(name for name in SERVICES if name.startswith("gateway-"))


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_two_gateway_replicas_of_one_image_and_config() -> None:
    assert len(GATEWAYS) == 2
    first, second = (SERVICES[name] for name in GATEWAYS)
    assert first == second
    assert first["build"]["dockerfile"] == "deploy/container/Dockerfile"
    assert (COMPOSE / first["build"]["context"] / first["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", GATEWAYS)
def test_gateway_hardening_and_read_only_config(name: str) -> None:
    service = SERVICES[name]
    assert "./gateway.yaml:/etc/gateway/gateway.yaml:ro" in service["volumes"]
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["user"] == "10001:10001"
    assert service["env_file"] == [".env"]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["command"][service["command"].index("--config") + 1] == "/etc/gateway/gateway.yaml"


def test_every_service_has_a_healthcheck_and_a_pinned_image() -> None:
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+(-[a-z0-9]+)?", image), (
            f"{name}: {image} is not pinned"
        )


def test_gateway_healthcheck_probes_readiness(tmp_path: Path) -> None:
    test = SERVICES[GATEWAYS[0]]["healthcheck"]["test"]
    url = re.search(r"http://127\.0\.0\.1:8000(/[a-z/]+)", " ".join(test))
    assert url is not None and url.group(1) == "/healthz/ready"
    settings = load_settings(COMPOSE / "gateway.yaml", environ=_env_example())
    assert url.group(1) in app_paths(settings)


def test_redis_persists_with_aof_and_a_secret_password() -> None:
    redis = SERVICES["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--requirepass" in command and "/run/secrets/redis_password" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert SPEC["secrets"]["redis_password"] == {"environment": "REDIS_PASSWORD"}
    assert "REDIS_PASSWORD" not in str(redis.get("environment", ""))


def test_proxy_terminates_tls_and_balances_both_replicas() -> None:
    proxy = SERVICES["proxy"]
    assert "443:443" in proxy["ports"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    caddyfile = (COMPOSE / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams is not None
    assert sorted(upstreams.group(1).split()) == [f"{name}:8000" for name in GATEWAYS]
    assert "health_uri /healthz/ready" in caddyfile
    assert "tls " in caddyfile
    for name in GATEWAYS:
        assert proxy["depends_on"][name]["condition"] == "service_healthy"
        assert "ports" not in SERVICES[name]  # only the proxy is published


def test_only_the_proxy_is_a_trusted_proxy() -> None:
    settings = load_settings(COMPOSE / "gateway.yaml", environ=_env_example())
    proxy_address = ipaddress.ip_address(SERVICES["proxy"]["networks"]["backend"]["ipv4_address"])
    subnet = ipaddress.ip_network(SPEC["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    assert proxy_address in subnet
    assert settings.http.proxy_networks == (ipaddress.ip_network(f"{proxy_address}/32"),)
    assert settings.http.client_address_header == "X-Forwarded-For"


def test_config_loads_with_the_env_example_and_uses_the_shared_redis() -> None:
    env = _env_example()
    settings = load_settings(COMPOSE / "gateway.yaml", environ=env)
    assert settings.store == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
    assert settings.issuer == f"https://{env['GATEWAY_PUBLIC_HOST']}"
    assert settings.secrets is not None


def test_env_example_names_every_variable_and_holds_only_placeholders() -> None:
    env = _env_example()
    text = (COMPOSE / "gateway.yaml").read_text() + (COMPOSE / "compose.yaml").read_text()
    needed = references(text) | set(re.findall(r"\$\{([A-Z_]+)(?::[-?][^}]*)?\}", text)) | {"REDIS_PASSWORD"}
    assert needed <= set(env)
    for name, value in env.items():
        if name.endswith(("SECRET", "PASSWORD")):
            assert value.startswith("replace"), f"{name} must be a placeholder in the example"


def test_config_refuses_a_missing_secret() -> None:
    env = _env_example()
    del env["GATEWAY_SECRET"]
    with pytest.raises(ConfigError, match="GATEWAY_SECRET"):
        load_settings(COMPOSE / "gateway.yaml", environ=env)
