"""Stage 5: the serial benchmark harness (host side).

`protocol` frames (COBS + CRC-16), `client` a device session over any pyserial URL with
timeouts, retries and reset recovery, `measure.run_benchmark` the whole measurement
(starting QEMU for emulated boards), `report` the table and per-op chart, `cli` the
`tinyrank bench` command. `faulty_link` and `host_device` let tests run the real device
code on the host over a deliberately flaky link. The device side is C in
firmware_templates/runtime/bench/.
"""
