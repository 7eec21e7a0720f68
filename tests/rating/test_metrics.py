"""/metrics over real HTTP: Prometheus text, the three ways to protect it, the numbers the switch keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.ports import free_port
from provisioning.app import start_http
from switch import app as switch_app
from switch.app import Switch as Services
from switch.settings import Settings
from switch.store import repo_tokens
from switch.store.crypto import generate_key
from switch.store.models import TokenRole
from tests.conftest_db import MigratedDb

Start = Callable[..., Any]


@pytest.fixture
async def start(migrated_db: MigratedDb) -> AsyncIterator[Start]:
    running: list[tuple[Services, Any]] = []

    async def go(**overrides: Any) -> tuple[Services, str, str]:
        port = free_port()
        settings = Settings(sip_listen=[("127.0.0.1", free_port("both"))], http_listen=("127.0.0.1", port),
                            database_url=migrated_db.url, key=generate_key().encode(), qualify_interval=0.0,
                            key_file="/nonexistent/never-read.key", cdr_spill_file=None, **overrides)
        services = await switch_app.start(settings)
        runner = await start_http(services.http, settings.http_listen)
        running.append((services, runner))
        token, _ = await repo_tokens.create_token(services.session_factory, TokenRole.OPERATOR, label="test")
        return services, f"http://127.0.0.1:{port}", token

    yield go
    for services, runner in running:
        await runner.cleanup()
        await switch_app.stop(services)


async def _get(url: str, token: str | None = None) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_metrics_need_an_operator_token_by_default_and_read_the_switch(start: Start) -> None:
    _services, base, token = await start()
    status, _, body = await _get(f"{base}/metrics")
    assert status == 401
    status, ctype, body = await _get(f"{base}/metrics", token)
    assert status == 200 and ctype.startswith("text/plain"), body
    samples = _samples(body)
    for name in ("softswitch_bindings", "softswitch_calls_in_progress", "softswitch_sip_transactions"):
        assert samples[(name, ())] == 0, name
    assert ("softswitch_db_writer_queue", (("writer", "bindings"),)) in samples
    assert ("softswitch_db_writer_queue", (("writer", "cdr"),)) in samples
    assert ("softswitch_gc_collections_total", (("generation", "0"),)) in samples
    assert ("softswitch_register_latency_seconds_count", ()) in samples
    assert ("softswitch_post_dial_delay_seconds_count", ()) in samples


async def test_a_metrics_token_replaces_the_api_token(start: Start) -> None:
    _services, base, token = await start(metrics_token="scrape-secret-1")
    assert (await _get(f"{base}/metrics", token))[0] == 401
    assert (await _get(f"{base}/metrics", "scrape-secret-2"))[0] == 401
    status, _, body = await _get(f"{base}/metrics", "scrape-secret-1")
    assert status == 200 and "softswitch_bindings" in body


async def test_a_dedicated_listener_serves_only_metrics_without_a_token(start: Start) -> None:
    port = free_port()
    _services, base, _token = await start(metrics_listen=("127.0.0.1", port))
    status, _, body = await _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "softswitch_calls_in_progress" in body
    assert (await _get(f"http://127.0.0.1:{port}/api/v1/reports/directory"))[0] == 404
    assert (await _get(f"{base}/metrics"))[0] == 401  # the main port still wants a token
