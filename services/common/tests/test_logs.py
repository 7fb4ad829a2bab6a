"""The log configuration: a request aiohttp cannot parse is one INFO line, not a traceback."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from sukverse_common.logs import configure_logging


async def test_a_nul_in_a_header_is_refused_in_one_line_without_its_bytes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t\x00tok\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
    finally:
        await runner.cleanup()
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    refused = [line for line in lines if "malformed request" in line.get("event", "")]
    assert len(refused) == 1, lines
    assert refused[0]["level"] == "info"
    assert refused[0]["event"].startswith("malformed request refused: 400 Invalid header")
    text = json.dumps(lines)
    assert "Traceback" not in text and "s3cr3t" not in text and "exception" not in refused[0]
