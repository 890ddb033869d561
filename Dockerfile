# tinyrank in a container: the same set-up script as a developer machine and CI, so they cannot drift.
#   docker build -t tinyrank .
#   docker run --rm tinyrank make test
#   docker run --rm tinyrank make demo
# Flashing a real board from a container needs the USB device passed in:
#   docker run --rm --device /dev/ttyACM0 tinyrank make flash BOARD=nano33 PORT=/dev/ttyACM0
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PLATFORMIO_SETTING_ENABLE_TELEMETRY=No

RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends make gcc libc6-dev git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tinyrank
COPY . .
# Installs gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm and the .venv.
RUN bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*

CMD ["make", "demo"]
