"""A device that lies: endless keepalives, impossible HELLO fields, a link that closes.

The fake device here is scripted in Python (no firmware), so each test states exactly what
the device sends; the client must end every exchange within its deadlines, with one sentence.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import serial

from tests.helpers.hostile_device import ScriptedLink, hello_body, scripted_device
from toolchain.bench.client import BenchClient, open_link
from toolchain.errors import DeviceError


def test_keepalives_cannot_extend_the_invoke_deadline():
    client = BenchClient(
        ScriptedLink(scripted_device(hello_body())), timeout=0.2, retries=1, invoke_timeout=0.3
    )
    client.hello()
    started = time.monotonic()
    with pytest.raises(DeviceError, match="no valid reply to INVOKE after 2 attempts"):
        client.invoke(runs=2)
    # two attempts of at most timeout + invoke_timeout * runs each, plus scheduling slack
    assert time.monotonic() - started < 2 * (0.2 + 0.2 + 0.6) + 1.0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_runs": 0}, "max_runs=0"),
        ({"max_body": 0}, "max_body=0"),
        ({"max_body": 5}, "max_body=5"),
        ({"max_body": 4000}, "max_body=4000"),
        ({"inputs": ()}, "0 inputs"),
        ({"outputs": (0,)}, "tensor sizes"),
    ],
)
def test_impossible_hello_fields_are_one_sentence(fields: dict, named: str):
    client = BenchClient(ScriptedLink(scripted_device(hello_body(**fields))), timeout=0.2, retries=0)
    with pytest.raises(DeviceError, match=named) as caught:
        client.hello()
    assert "\n" not in str(caught.value) and str(caught.value).count("failed") <= 1


def test_a_device_closing_the_socket_is_one_sentence():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_then_close() -> None:
        connection, _ = server.accept()
        connection.recv(64)
        connection.close()

    thread = threading.Thread(target=accept_then_close, daemon=True)
    thread.start()
    try:
        client = BenchClient(open_link(f"socket://127.0.0.1:{port}"), name="dev", timeout=0.5, retries=2)
        with pytest.raises(DeviceError) as caught:
            client.hello()
    finally:
        server.close()
        thread.join(5)
    message = str(caught.value)
    assert message == "dev: the device closed the connection while tinyrank was reading from it", message
    assert "read failed: read failed" not in message


def test_serial_exception_text_is_not_doubled():
    class Broken(ScriptedLink):
        def read(self, size: int = 1) -> bytes:
            raise serial.SerialException("read failed: [Errno 5] Input/output error")

    client = BenchClient(Broken(scripted_device(hello_body())), name="dev", timeout=0.2, retries=0)
    with pytest.raises(
        DeviceError, match=r"^dev: reading from the link failed \(\[Errno 5\] Input/output error\)$"
    ):
        client.hello()
