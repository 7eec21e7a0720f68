"""A TCP connection flood against `softswitch run`: HTTP keeps answering, the log stays short.

The switch runs with a small descriptor limit (``prlimit``, 256), so its SIP TCP
budget is small (``split_descriptors``: 96, as HTTP's); 300 connections from
ten source addresses try to take every descriptor. Before the caps they did,
and took the API, provisioning and /health down with them, writing a
traceback per refused connection.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from harness.softswitch import SwitchProcess, http_get_json, sip_options_udp

pytestmark = pytest.mark.e2e


class LimitedSwitch(SwitchProcess):
    def command(self) -> list[str]:
        return ["prlimit", "--nofile=256:256", "--", *super().command()]


def test_http_survives_a_tcp_flood(tmp_path: Path) -> None:
    assert shutil.which("prlimit"), "prlimit (util-linux) is needed"
    sw = LimitedSwitch(db_url=f"sqlite+aiosqlite:///{tmp_path / 'sw.db'}", workdir=tmp_path)
    socks: list[socket.socket] = []
    with sw:
        try:
            for i in range(300):
                s = socket.socket()
                s.bind((f"127.0.0.{2 + i % 10}", 0))
                s.settimeout(2.0)
                try:
                    s.connect(("127.0.0.1", sw.sip_port))
                except OSError:
                    s.close()
                    continue
                socks.append(s)
            time.sleep(0.5)
            status, body = http_get_json(sw.http_url + "/health", timeout=5.0)
            assert status == 200, body
            assert sip_options_udp(sw.sip_port, timeout=2.0) is not None
        finally:
            for s in socks:
                s.close()
        log = sw.log_text()
        assert "Traceback" not in log
        assert log.count("global cap") <= 2, log[-3000:]
