"""`sukverse up` as a user runs it: starts, serves, stops on Ctrl-C, and keeps its data."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "correct horse battery staple"


def free_port_base(count: int = 6) -> int:
    for _ in range(50):
        base = random.randint(20_000, 60_000)
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports")


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Platform:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port_base = free_port_base()
        self.url = f"http://127.0.0.1:{self.port_base}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "SUKVERSE_DATA_DIR": str(self.data_dir)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sukverse_platform.cli",
                "up",
                "--port-base",
                str(self.port_base),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()[0]
            try:
                if call("GET", f"{self.url}/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("sukverse up did not become ready")

    def interrupt(self) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=20)
        code = self.process.returncode
        self.process = None
        return code, output


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path / "data")
    yield platform
    if platform.process is not None:
        platform.process.kill()
        platform.process.wait()


def test_up_serves_stops_cleanly_on_ctrl_c_and_keeps_data(platform: Platform) -> None:
    platform.start()
    status, _ = call(
        "POST",
        f"{platform.url}/auth/register",
        {"email": "up@example.com", "password": PASSWORD, "full_name": "Up"},
    )
    assert status == 201
    code, output = platform.interrupt()
    assert code == 0, output
    assert "admin@sukverse.localhost" in output  # the generated admin was shown
    assert '"event": "stopping"' in output
    assert "Traceback" not in output
    assert sorted(p.name for p in platform.data_dir.glob("*.db")) == ["auth.db"]

    platform.start()
    status, pair = call(
        "POST", f"{platform.url}/auth/login", {"email": "up@example.com", "password": PASSWORD}
    )
    assert status == 200 and pair["access_token"]
    code, output = platform.interrupt()
    assert code == 0
    assert "admin@sukverse.localhost" not in output  # shown once only


def test_bad_settings_stop_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SUKVERSE_DATA_DIR": str(tmp_path),
        "SUKVERSE_LOG_LEVEL": "INFO",
        "SUKVERSE_MAX_BODY_BYTES": "ten",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sukverse_platform.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "max_body_bytes" in result.stderr
