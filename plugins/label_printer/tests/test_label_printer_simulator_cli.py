"""The simulator as a person runs it: ``python -m mes_label_printer.simulator``, with its control port."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest


@pytest.fixture
def running_simulator():
    proc = subprocess.Popen(
        [sys.executable, "-m", "mes_label_printer.simulator", "--port", "0", "--control-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ports = []
        deadline = time.monotonic() + 10
        while len(ports) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            ports += [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
        assert len(ports) == 2, "simulator did not report its ports"
        yield ports
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _ask(port: int, line: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(line)
        return s.makefile("rb").readline().decode()


def test_prints_and_takes_faults_from_the_control_port(running_simulator):
    zpl_port, control_port = running_simulator
    with socket.create_connection(("127.0.0.1", zpl_port), timeout=3) as s:
        s.sendall(b"^XA^FDone^FS^XZ^XA^FDtwo^FS^XZ")
    deadline = time.monotonic() + 30  # generous: only a broken simulator waits this long
    while "printed=2" not in (answer := _ask(control_port, b"count\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "printed=2" in answer
    assert _ask(control_port, b"fault head_open on\n").startswith("ok head_open=True")
    assert "head open" in _ask(control_port, b"status\n")
    with socket.create_connection(("127.0.0.1", zpl_port), timeout=3) as s:
        s.sendall(b"~HS")
        reply = b""
        while reply.count(b"\x03") < 3:
            chunk = s.recv(1024)
            assert chunk
            reply += chunk
    assert reply.split(b"\x02")[2].split(b",")[2] == b"1"  # string 2, field o: head up
