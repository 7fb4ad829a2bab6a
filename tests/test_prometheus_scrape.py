"""A real Prometheus (Debian's package, provisioned by hack/) scrapes a running service."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sukverse_auth.app import create_app
from sukverse_auth.settings import AuthSettings

pytestmark = pytest.mark.real


def query(url: str, promql: str) -> list[dict[str, Any]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        return result


async def test_prometheus_scrapes_the_service_metrics(
    prometheus: Callable[[str], str], tmp_path: Path, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(create_app(AuthSettings(data_dir=tmp_path)))
    config = (
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: auth\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    url = await asyncio.to_thread(prometheus, config)
    promql = 'sukverse_http_requests_total{service="auth",route="/metrics"}'
    deadline = time.monotonic() + 60
    while not (found := await asyncio.to_thread(query, url, promql)):
        assert time.monotonic() < deadline, "Prometheus never scraped the service"
        await asyncio.sleep(0.5)
    assert found[0]["metric"]["job"] == "auth"
    up = await asyncio.to_thread(query, url, 'up{job="auth"}')
    assert up[0]["value"][1] == "1"
