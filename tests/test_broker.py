"""The embedded broker: `imminence broker` in the foreground, port checks, S3 storage that survives a crash."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaProducer

from streamer.broker import BrokerError, EmbeddedBroker, free_port, port_in_use

ROOT = Path(__file__).resolve().parents[1]
IMMINENCE = [sys.executable, "-m", "imminence.cli"]


def test_broker_command_prints_the_address_serves_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen([*IMMINENCE, "broker", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}", proc.stderr.read() if proc.poll() is not None else line
        producer = KafkaProducer(bootstrap_servers=line, acks="all")
        try:
            meta = producer.send("broker-cli-check", b'{"ok": true}').get(10)
            assert meta.offset == 0
        finally:
            producer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "stopping" in proc.stderr.read()
        assert not port_in_use("127.0.0.1", port)  # tansu went with it
    finally:
        if proc.poll() is None:
            proc.kill()


def test_broker_command_on_a_busy_port_or_a_bad_port_fails_with_a_clear_message(monkeypatch, capsys):
    import imminence.cli

    monkeypatch.setattr(imminence.cli, "setup_logging", lambda *a, **k: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert imminence.cli.main(["broker", "--port", str(port)]) == 1
    cap = capsys.readouterr()
    assert f"127.0.0.1:{port} is already in use" in cap.err and cap.out == ""
    assert imminence.cli.main(["broker", "--port", "70000"]) == 2
    assert "not a port number" in capsys.readouterr().err


def test_embedded_broker_refuses_a_port_in_use(embedded_broker):
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=embedded_broker.port).start()
