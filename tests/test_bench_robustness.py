"""The client against a flaky link: noise, corrupted and dropped frames, a device that resets
mid-run, bad ports, the wrong firmware and Ctrl-C. The device is the benchmark C code built
for the host (see test_bench_device.py); FaultyLink damages the traffic on a schedule."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from tests.helpers.faulty_link import FaultyLink
from tests.helpers.host_device import HostDevice, build_host_device
from toolchain.bench.client import BenchClient, open_link
from toolchain.errors import DeviceError

FIXTURE = Path(__file__).parent / "fixtures" / "bench_host"
HASH = 0x12345678
SAMPLE = bytes(np.arange(16, dtype=np.int8).tobytes())
EXPECTED = bytes([3, 11, 19, 27])  # sums of four, halved


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench_faults")
    return build_host_device(FIXTURE, FIXTURE / "port_host.c", out / "device")


@pytest.fixture
def device(executable: Path):
    with HostDevice(executable) as dev:
        yield dev


def faulty_client(device: HostDevice, **faults) -> BenchClient:
    link = FaultyLink(open_link(device.url), **faults)
    return BenchClient(
        link, name=device.url, timeout=0.15, retries=6, invoke_timeout=0.05, expected_hash=HASH
    )


# Sent frames: 0 HELLO, 1 SET_INPUT, 2 INVOKE, 3 STATS, 4 GET_OUTPUT.
# Received frames: 0 HELLO reply, 1 SET_INPUT reply, 2 INVOKE_STARTED, 3 INVOKE reply, 4 STATS reply.
# (HostDevice swallows the BOOT frame of the first start.)
@pytest.mark.parametrize(
    "faults",
    [
        {"garbage_sent": {0, 1, 2, 3, 4}},
        {"garbage_received": {0, 1, 2, 3, 4, 5, 6}},
        {"flip_sent": {1}},
        {"flip_sent": {2}},
        {"flip_received": {1}},
        {"flip_received": {3}},
        {"drop_sent": {0, 2}},
        {"drop_received": {0, 2}},
        {"drop_received": {3}},
        {"drop_received": {2, 3}},
        {"drop_received": {4}},
    ],
    ids=lambda f: ",".join(f"{k}={sorted(v)}" for k, v in f.items()),
)
def test_single_faults_are_recovered(device: HostDevice, faults: dict) -> None:
    with faulty_client(device, **faults) as client:
        result = client.run([SAMPLE], runs=3)
    assert result.outputs == [EXPECTED]
    assert result.counts == [300, 300, 300]
    assert client.link.faults_applied >= 1


def test_corrupted_reply_is_counted_and_retried(device: HostDevice) -> None:
    with faulty_client(device, flip_received={1}) as client:
        client.run([SAMPLE])
    assert client.bad_frames == 1
    assert client.retries_used >= 1


def test_flaky_link_soak(device: HostDevice) -> None:
    rng = np.random.default_rng(1)
    with faulty_client(device, seed=3, drop_rate=0.04, flip_rate=0.04, garbage_rate=0.04) as client:
        client.retries = 8
        for _ in range(25):
            sample = rng.integers(-128, 128, 16, dtype=np.int8)
            expected = np.clip(sample.astype(np.int32).reshape(4, 4).sum(1) >> 1, -128, 127).astype(np.int8)
            assert client.run([sample.tobytes()]).outputs == [expected.tobytes()]
        assert client.link.faults_applied >= 5


def test_a_dead_link_fails_after_bounded_retries(device: HostDevice) -> None:
    with faulty_client(device, drop_rate=1.0) as client:
        start = time.monotonic()
        with pytest.raises(DeviceError, match=r"no valid reply to HELLO after 7 attempts of 0.15 s"):
            client.hello()
        assert time.monotonic() - start < 3.0


def test_reset_mid_run_says_hello_again_and_replays(device: HostDevice) -> None:
    # The board restarts just before the INVOKE arrives: its input is gone.
    def reset_at(frame: int) -> None:
        if frame == 2:
            device.reset()

    with faulty_client(device, on_send=reset_at) as client:
        result = client.run([SAMPLE], runs=2)
    assert result.outputs == [EXPECTED]
    assert client.resets_seen == 1 and device.starts == 2


def test_a_device_that_keeps_resetting_is_an_error(device: HostDevice) -> None:
    def reset_on_invoke(frame: int) -> None:
        if frame >= 2 and (frame - 2) % 3 == 0:  # HELLO, SET_INPUT, then reset at every INVOKE
            device.reset()

    with faulty_client(device, on_send=reset_on_invoke) as client:
        client.max_resets = 2
        with pytest.raises(DeviceError, match="restarted 3 times"):
            client.run([SAMPLE])


def test_wrong_firmware_is_one_line(device: HostDevice) -> None:
    with BenchClient.open(device.url, timeout=0.2, expected_hash=0xDEADBEEF) as client:
        with pytest.raises(DeviceError, match="runs model 12345678 but the host model is deadbeef") as err:
            client.hello()
    assert "\n" not in str(err.value)


def test_protocol_version_mismatch_is_one_line(tmp_path: Path) -> None:
    exe = build_host_device(FIXTURE, FIXTURE / "port_host.c", tmp_path / "v2", ["BENCH_PROTOCOL_VERSION=2"])
    with HostDevice(exe) as dev, BenchClient.open(dev.url, timeout=0.2) as client:
        with pytest.raises(DeviceError, match="protocol v2, this host v1"):
            client.hello()


def test_missing_port_is_one_line() -> None:
    with pytest.raises(DeviceError, match=r"port /dev/ttyTINYRANK9: no such device"):
        BenchClient.open("/dev/ttyTINYRANK9")


def test_busy_port_is_one_line(device: HostDevice) -> None:
    first = open_link(device.url)
    try:
        with pytest.raises(DeviceError, match="is busy"):
            open_link(device.url)
    finally:
        first.close()


def test_refused_socket_is_one_line() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeviceError, match=f"port socket://127.0.0.1:{port}: cannot open"):
        BenchClient.open(f"socket://127.0.0.1:{port}")


def test_every_read_is_bounded_by_a_timeout() -> None:
    # loop:// echoes our own requests back: never a valid reply, so only timeouts end the wait.
    link = serial.serial_for_url("loop://")
    with BenchClient(link, timeout=0.05, retries=2) as client:
        start = time.monotonic()
        with pytest.raises(DeviceError, match="after 3 attempts"):
            client.hello()
        assert time.monotonic() - start < 1.0


def test_ctrl_c_closes_the_port(device: HostDevice) -> None:
    client = faulty_client(device, interrupt_on_read=3)
    with pytest.raises(KeyboardInterrupt):
        with client:
            client.run([SAMPLE])
    assert client.link.closed and not client.link.link.is_open


def test_pty_is_released_after_close(device: HostDevice) -> None:
    # After a session the port can be opened exclusively again (no leaked handle).
    with faulty_client(device) as client:
        client.run([SAMPLE])
    open_link(device.url).close()
    assert os.path.exists(device.url)
