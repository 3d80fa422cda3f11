"""Hot reload in one process: a valid file is applied, an invalid one or a restart-only change is
refused and logged while the old configuration keeps serving, and requests during swaps all succeed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.runtime import Configured
from tests.reload.support import (
    authorize_url,
    config_data,
    reloader_of,
    reloading_app,
    runtime_of,
    with_apps,
    write_config,
)

RELOAD_LOGGER = "gateway.reload"


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RELOAD_LOGGER and r.levelno == level]


async def test_an_added_app_and_a_new_tenant_name_are_served_after_a_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        assert (await client.get(authorize_url("added"))).status_code == 400
        write_config(path, config_data(path, applications=with_apps("added"), tenant={"name": "Fabrikam"}))

        outcome = await reloader_of(app).reload()

        assert (outcome.result, outcome.generation) == ("applied", 2)
        page = await client.get(authorize_url("added"))
        assert page.status_code == 200 and "Fabrikam" in page.text and "Contoso" not in page.text
        digest = runtime_of(app).latest.digest
        assert digest is not None and len(digest) == 64
        [applied] = messages(caplog, logging.INFO)
        assert f"configuration generation 2 applied from {path} (sha256 {digest}" in applied


async def test_the_demo_switch_follows_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    async with reloading_app(path) as (app, client):
        assert (await client.get("/demo")).status_code == 200
        write_config(path, config_data(path, demo={"enabled": False}))
        assert (await reloader_of(app).reload()).result == "applied"
        assert (await client.get("/demo")).status_code == 404
        assert (await client.get("/demo/login")).status_code == 404
        write_config(path, config_data(path, demo={"enabled": True}))
        assert (await reloader_of(app).reload()).result == "applied"
        assert (await client.get("/demo")).status_code == 200


async def test_an_invalid_file_is_refused_with_its_lines_and_the_old_one_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path, applications=with_apps("kept")))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        before = runtime_of(app).latest
        write_config(path, config_data(path, tokens={"access_token_seconds": -5}, limts={}))
        lines = path.read_text().splitlines()
        seconds_line = next(n for n, line in enumerate(lines, 1) if "access_token_seconds" in line)
        limts_line = next(n for n, line in enumerate(lines, 1) if line.startswith("limts:"))

        outcome = await reloader_of(app).reload()

        assert (outcome.result, outcome.generation) == ("refused", 1)
        assert runtime_of(app).latest is before  # nothing swapped
        assert (await client.get(authorize_url("kept"))).status_code == 200
        errors = messages(caplog, logging.ERROR)
        assert f"configuration not reloaded from {path} (2 problems); still serving generation 1" in errors[0]
        assert any(
            e.startswith(f"configuration not reloaded: {path}:{seconds_line}:")
            and "tokens.access_token_seconds" in e
            for e in errors[1:]
        ), errors
        assert any(f"{path}:{limts_line}:1: limts: unknown key" in e for e in errors[1:]), errors
        assert messages(caplog, logging.INFO) == []


async def test_broken_yaml_is_refused_with_its_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        path.write_text(path.read_text() + "demo: {enabled: [\n")
        outcome = await reloader_of(app).reload()
        assert outcome.result == "refused" and outcome.reasons[0].startswith(f"{path}:")
        assert any(outcome.reasons[0] in e for e in messages(caplog, logging.ERROR))
        assert (await client.get("/demo")).status_code == 200


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"store": "sqlite:///elsewhere.db"}, "store"),
        ({"issuer": "http://127.0.0.1:9999"}, "issuer"),
        ({"tenant": {"id": "00000000-0000-4000-8000-000000000000"}}, "tenant.id"),
        ({"secrets": {"key": "another-secret-" + "y" * 40}}, "secrets"),
    ],
)
async def test_a_restart_only_key_is_refused_by_name_and_its_value_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict[str, object], key: str
) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        before = runtime_of(app).latest
        write_config(path, config_data(path, demo={"enabled": False}, **change))

        outcome = await reloader_of(app).reload()

        assert outcome.result == "refused"
        assert outcome.reasons == (f"{path}: {key}: cannot change without a restart",)
        assert runtime_of(app).latest is before
        assert (await client.get("/demo")).status_code == 200  # the rest of the file is not applied either
        logged = "\n".join(messages(caplog, logging.ERROR))
        assert f"{key}: cannot change without a restart" in logged
        assert "another-secret" not in logged and "elsewhere" not in logged


async def test_a_generation_that_cannot_be_built_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        before = runtime_of(app).latest

        def unreadable(*args: object, **kwargs: object) -> Configured:
            raise ValueError("api_connectors[0]: the certificate file cert.pem cannot be read")

        monkeypatch.setattr("gateway.reload.configure", unreadable)
        write_config(path, config_data(path, demo={"enabled": False}))
        outcome = await reloader_of(app).reload()
        assert outcome.result == "refused" and "cert.pem cannot be read" in outcome.reasons[0]
        assert runtime_of(app).latest is before
        assert any("cert.pem cannot be read" in e for e in messages(caplog, logging.ERROR))
        assert (await client.get("/demo")).status_code == 200


async def test_the_same_content_is_not_reloaded_but_sighup_forces_it(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    async with reloading_app(path) as (app, _):
        reloader = reloader_of(app)
        path.write_text(path.read_text())  # touched, same content
        assert (await reloader.reload()).result == "unchanged"
        assert (await reloader.check()) is None  # seen: not even read again
        assert (await reloader.reload(trigger="SIGHUP", force=True)).generation == 2


async def test_a_refused_file_is_reported_once_not_at_every_look(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, _):
        reloader = reloader_of(app)
        path.write_text(path.read_text() + "limts: {}\n")
        assert (await reloader.check()) is not None
        assert (await reloader.check()) is None
        path.write_text(path.read_text())  # touched, same bad content
        again = await reloader.check()
        assert again is not None and again.result == "unchanged" and again.generation == 1
        assert len([e for e in messages(caplog, logging.ERROR) if "limts" in e]) == 1


async def test_an_unreadable_file_is_refused_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    caplog.set_level(logging.INFO, RELOAD_LOGGER)
    async with reloading_app(path) as (app, client):
        saved = path.read_text()
        path.unlink()
        first, second = await reloader_of(app).check(), await reloader_of(app).check()
        assert first is not None and first.result == "refused" and "cannot be read" in first.reasons[0]
        assert second is not None and second.result == "refused"
        assert len([e for e in messages(caplog, logging.ERROR) if "cannot be read" in e]) == 1
        assert (await client.get("/demo")).status_code == 200
        path.write_text(saved.replace("enabled: true", "enabled: false"))
        assert (await reloader_of(app).check()) is not None
        assert (await client.get("/demo")).status_code == 404


async def test_the_watch_applies_a_changed_file_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path, reload={"watch": True, "interval_seconds": 0.05}))
    async with reloading_app(path) as (app, client):
        write_config(
            path, config_data(path, reload={"watch": True, "interval_seconds": 0.05}, demo={"enabled": False})
        )
        for _ in range(100):
            if runtime_of(app).latest.generation == 2:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/demo")).status_code == 404
        await asyncio.sleep(0.3)
        assert runtime_of(app).latest.generation == 2  # the same content is not applied again


async def test_sighup_reloads_when_the_watch_is_off(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path, reload={"watch": False, "interval_seconds": 0.05}))
    async with reloading_app(path) as (app, client):
        write_config(
            path,
            config_data(path, reload={"watch": False, "interval_seconds": 0.05}, demo={"enabled": False}),
        )
        await asyncio.sleep(0.3)
        assert runtime_of(app).latest.generation == 1
        reloader_of(app).signal()  # what the SIGHUP handler does
        for _ in range(100):
            if runtime_of(app).latest.generation == 2:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/demo")).status_code == 404


async def test_requests_in_flight_during_twenty_swaps_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    names = ["Contoso", "Fabrikam"]
    contents = [config_data(path, applications=with_apps("steady"), tenant={"name": n}) for n in names]
    write_config(path, contents[0])
    async with reloading_app(path) as (app, client):
        reloader = reloader_of(app)

        async def swaps() -> None:
            for i in range(20):
                write_config(path, contents[(i + 1) % 2])
                assert (await reloader.reload()).result == "applied"
                await asyncio.sleep(0)

        async def request(i: int) -> tuple[int, str]:
            url = authorize_url("steady") if i % 2 else "/.well-known/openid-configuration"
            response = await client.get(url)
            return response.status_code, response.text

        results, _ = await asyncio.gather(asyncio.gather(*(request(i) for i in range(200))), swaps())

        assert [status for status, _ in results] == [200] * 200
        pages = [text for i, (_, text) in enumerate(results) if i % 2]
        assert all(sum(name in page for name in names) == 1 for page in pages)  # one generation a page
        assert runtime_of(app).latest.generation == 21


async def test_a_request_reads_the_generation_it_started_with(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    async with reloading_app(path) as (app, _):
        rt = runtime_of(app)
        first = rt.latest
        with rt.pinned():
            write_config(path, config_data(path, tenant={"name": "Fabrikam"}))
            assert (await reloader_of(app).reload()).result == "applied"
            assert rt.settings.tenant.name == "Contoso" and rt.config is first
            assert await asyncio.create_task(asyncio.sleep(0, rt.settings.tenant.name)) == "Contoso"
        assert rt.settings.tenant.name == "Fabrikam" and rt.config is rt.latest


async def test_a_replaced_generation_is_closed_after_its_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    async with reloading_app(path) as (app, _):
        rt, reloader = runtime_of(app), reloader_of(app)
        reloader.grace_seconds = 0.1
        first = rt.latest
        stopped: list[str] = []

        async def stop() -> None:
            stopped.append("outbox")

        first.outbox.stop = stop  # type: ignore[method-assign]
        write_config(path, config_data(path, tenant={"name": "Fabrikam"}))  # same mail: outbox shared
        await reloader.reload()
        second = rt.latest
        assert second.outbox is first.outbox
        write_config(path, config_data(path, mail={"from": "Fabrikam <no-reply@fabrikam.example>"}))
        await reloader.reload()
        assert rt.latest.outbox is not first.outbox
        await asyncio.sleep(0.05)
        assert stopped == []  # still in the grace period
        await asyncio.sleep(0.3)
        assert stopped == ["outbox"]  # once, after both generations that shared it were retired
        assert rt._live == [rt.latest]


async def test_discovery_follows_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    write_config(path, config_data(path))
    async with reloading_app(path) as (app, client):
        before = (await client.get("/.well-known/openid-configuration")).json()
        assert "de" not in before["ui_locales_supported"]
        write_config(path, config_data(path, translations={"de": {"signin.email.title": "Anmelden"}}))
        assert (await reloader_of(app).reload()).result == "applied"

        after = (await client.get("/.well-known/openid-configuration")).json()

        assert after["ui_locales_supported"] == sorted([*before["ui_locales_supported"], "de"])
