"""The reliability probe's link and process parts: a lying serial device, and signals sent to the
real `tinyrank bench` / `tinyrank flash` while QEMU (and PlatformIO) run. See bench_robustness.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers import tflite_fuzz
from tests.helpers.waiting import running as leaked
from tests.helpers.waiting import wait_until


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _serial_scenarios() -> dict[str, Any]:
    from tests.helpers.hostile_device import ScriptedLink, hello_body, scripted_device
    from toolchain.bench.client import BenchClient

    def client(**fields):
        return BenchClient(
            ScriptedLink(scripted_device(hello_body(**fields))), timeout=0.2, retries=1, invoke_timeout=0.3
        )

    def keepalives():
        c = client()
        c.hello()
        c.invoke(runs=2)

    scenarios = {"keepalives forever": keepalives}
    for fields in ({"max_runs": 0}, {"max_body": 0}, {"max_body": 5}, {"inputs": ()}, {"outputs": (0,)}):
        scenarios[f"HELLO {fields}"] = lambda f=fields: client(**f).hello()
    scenarios["socket closed"] = _closed_socket
    return scenarios


def _closed_socket() -> None:
    import socket

    from toolchain.bench.client import BenchClient, open_link

    server = socket.create_server(("127.0.0.1", 0))

    def accept_then_close() -> None:
        connection, _ = server.accept()
        connection.recv(64)
        connection.close()

    threading.Thread(target=accept_then_close, daemon=True).start()
    try:
        url = f"socket://127.0.0.1:{server.getsockname()[1]}"
        BenchClient(open_link(url), name="dev", timeout=0.5, retries=2).hello()
    finally:
        server.close()


def probe_serial(limit_s: float = 10.0) -> dict[str, Any]:
    from toolchain.errors import DeviceError

    outcomes: dict[str, str] = {}
    for name, scenario in _serial_scenarios().items():
        box: dict[str, BaseException | None] = {}

        def run(scenario=scenario, box=box) -> None:
            try:
                scenario()
                box["error"] = None
            except BaseException as exc:  # noqa: BLE001 - classified below
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(limit_s)
        error = box.get("error", "hang")
        if error == "hang":
            outcomes[name] = "hang"
        elif error is None:
            outcomes[name] = "wrong success"
        elif not isinstance(error, DeviceError):
            outcomes[name] = "traceback"
        elif "\n" in str(error) or str(error).count("failed") > 1:
            outcomes[name] = "misleading message"
        else:
            outcomes[name] = "clean"
    return {"cases": len(outcomes), "counts": dict(Counter(outcomes.values())), "outcomes": outcomes}


def _firmware(work: Path) -> Path:
    from toolchain.codegen import generate
    from toolchain.firmware import build

    gen = work / "signal_model" / "gen"
    generate(tflite_fuzz.SEEDS / "mlp.tflite", gen)
    build(gen, "qemu_m4")
    return gen


def probe_signals(work: Path) -> dict[str, Any]:
    """Each command signalled once QEMU runs; then QEMU or pio still running names the project folder."""
    gen = _firmware(work)
    marker = str(gen / "firmware_qemu_m4")
    outcomes: dict[str, str] = {}
    cases = [(cmd, sig) for cmd in ("bench", "flash") for sig in ("SIGTERM", "SIGHUP", "SIGINT", "SIGKILL")]
    cases += [("bench", "timeout --foreground"), ("flash", "timeout --foreground")]
    for command, how in cases:
        argv = [sys.executable, "-m", "toolchain.cli", command, str(gen), "--board", "qemu_m4"]
        argv += ["--runs", "65535", "--timeout", "30"] if command == "bench" else []
        prefix = ["timeout", "--foreground", "8"] if how.startswith("timeout") else []
        process = subprocess.Popen(
            [*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        started = wait_until(lambda: leaked(f"qemu-system-arm.*{marker}") > 0, 120)
        if started and not prefix:
            process.send_signal(getattr(signal, how))
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            kill_group(process)
            outcomes[f"{command} {how}"] = "hang"
            continue

        def left() -> int:
            return leaked(f"qemu-system-arm.*{marker}") + leaked(f"platformio.*{marker}")

        still_running = (
            0 if wait_until(lambda: left() == 0, 10) else left()
        )  # the kernel's kill takes a moment
        if not started:
            outcome = "qemu never started"
        elif still_running:
            outcome = "leaked process"
        elif "Traceback" in err.decode(errors="replace"):
            outcome = "traceback"
        else:
            outcome = "clean"
        outcomes[f"{command} {how}"] = outcome
        subprocess.run(["pkill", "-KILL", "-f", f"qemu-system-arm.*{marker}"], timeout=10)
    return {"cases": len(outcomes), "counts": dict(Counter(outcomes.values())), "outcomes": outcomes}
