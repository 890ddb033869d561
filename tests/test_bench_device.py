"""The benchmark protocol end to end, without QEMU: the device C code compiled for the host
(tests/fixtures/bench_host: a host port and a tiny handwritten model) on a pty, driven by
the Python client through a real pyserial port."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.host_device import HostDevice, build_host_device
from toolchain.bench import protocol as p
from toolchain.bench.client import BenchClient
from toolchain.errors import DeviceError

FIXTURE = Path(__file__).parent / "fixtures" / "bench_host"
HASH = 0x12345678


def reference(inputs: bytes) -> bytes:
    """What the fixture model computes: sums of four, halved (arithmetic shift), saturated."""
    x = np.frombuffer(inputs, dtype=np.int8).astype(np.int32).reshape(-1, 4).sum(axis=1)
    return np.clip(x >> 1, -128, 127).astype(np.int8).tobytes()


@pytest.fixture(scope="module")
def executables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bench_host")
    return {
        "small": build_host_device(FIXTURE, FIXTURE / "port_host.c", out / "small"),
        "large": build_host_device(FIXTURE, FIXTURE / "port_host.c", out / "large", ["FIXTURE_GROUPS=300"]),
    }


@pytest.fixture(scope="module")
def small_device(executables: dict[str, Path]):
    with HostDevice(executables["small"]) as device:
        yield device


@pytest.fixture
def client(small_device: HostDevice):
    with BenchClient.open(small_device.url, timeout=2.0, expected_hash=HASH) as c:
        c.hello()
        yield c


def test_hello_reports_the_firmware(client: BenchClient) -> None:
    info = client.hello()
    assert info.protocol_version == p.PROTOCOL_VERSION
    assert info.model_hash == HASH
    assert (info.input_sizes, info.output_sizes, info.num_ops) == ((16,), (4,), 2)
    assert (info.board_id, info.counter_unit, info.clock_hz, info.per_op) == (
        "host_test",
        "cycles",
        1_000_000,
        True,
    )
    assert (info.arena_bytes, info.static_ram_bytes, info.stack_bytes) == (16, 4096, 1024)
    # port_host.c marks the top 200 bytes of its painted fake stack as used.
    assert info.stack_used_bytes == 200


def test_run_returns_outputs_counts_and_stack(client: BenchClient) -> None:
    sample = bytes(np.arange(-8, 8, dtype=np.int8).tobytes())
    result = client.run([sample], runs=5, warmup=2)
    assert result.outputs == [reference(sample)]
    # The fixture model advances the fake counter by 100 + 200 per run.
    assert result.counts == [300] * 5
    assert result.status == 0
    assert result.stack_used_bytes == 200


def test_runs_beyond_one_invoke_are_batched(client: BenchClient) -> None:
    result = client.run([bytes(16)], runs=client.info.max_runs * 2 + 3)
    assert len(result.counts) == 131 and set(result.counts) == {300}


def test_per_op_counts(client: BenchClient) -> None:
    result = client.run([bytes(16)], runs=3, per_op=True)
    assert result.op_counts == [100, 200]
    assert result.counts == [300] * 3  # in per-op mode a run is the sum of its ops


def test_invoke_failure_is_reported(client: BenchClient) -> None:
    result = client.run([b"\x80\x80" + bytes(14)], runs=2)
    assert result.status == 7


@pytest.mark.parametrize(
    ("command", "body", "message"),
    [
        (p.SET_INPUT, struct.pack("<BI", 3, 0) + b"x", "index out of range"),
        (p.SET_INPUT, struct.pack("<BI", 0, 15) + b"xy", "outside the tensor"),
        (p.GET_OUTPUT, struct.pack("<BIH", 0, 0, 5), "outside the tensor"),
        (p.INVOKE, struct.pack("<HB", 65, 0), "too many runs"),
        (p.INVOKE, b"", "malformed"),
        (0x42, b"", "unknown command"),
    ],
)
def test_device_refuses_bad_requests_with_a_reason(
    client: BenchClient, command: int, body: bytes, message: str
) -> None:
    with pytest.raises(DeviceError, match=message):
        client.request(command, body)
    assert client.retries_used == 0  # a refusal is an answer, not a silence to retry


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1200, max_size=1200))
def test_tensors_larger_than_a_frame_survive_any_bytes(executables: dict[str, Path], sample: bytes) -> None:
    # 1200 input bytes in 5 chunks, 300 output bytes in 2: zeros and long zero-free runs
    # exercise the C COBS encoder and decoder against the Python ones.
    with HostDevice(executables["large"]) as device, BenchClient.open(device.url, timeout=2.0) as c:
        assert c.run([sample]).outputs == [reference(sample)]


def test_large_run_many_samples_on_one_session(executables: dict[str, Path]) -> None:
    rng = np.random.default_rng(0)
    with HostDevice(executables["large"]) as device, BenchClient.open(device.url, timeout=2.0) as c:
        for _ in range(10):
            sample = rng.integers(-128, 128, 1200, dtype=np.int8).tobytes()
            assert c.run([sample]).outputs == [reference(sample)]
        assert c.bad_frames == 0 and c.retries_used == 0


def test_per_op_on_firmware_without_hooks_is_one_line(tmp_path: Path) -> None:
    exe = build_host_device(FIXTURE, FIXTURE / "port_host.c", tmp_path / "plain", profile=False)
    with HostDevice(exe) as device, BenchClient.open(device.url, timeout=2.0) as c:
        assert c.hello().per_op is False
        assert c.run([bytes(16)], runs=2).counts == [300, 300]  # plain timing still works
        with pytest.raises(DeviceError, match="built without per-op hooks"):
            c.run([bytes(16)], per_op=True)
