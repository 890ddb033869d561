#!/usr/bin/env bash
# Idempotent set-up: the Arm cross toolchain and QEMU from Debian, then .venv with tinyrank installed.
# Quick when everything is already there; the Dockerfile runs this same script.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm espeak-ng cmake"
PYTHON="${PYTHON:-python3}"

missing_debs() {
    local missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    echo "$missing"
}

install_debs() {
    local missing; missing="$(missing_debs)"
    [ -z "$missing" ] && return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "setup: need the Debian packages:$missing" >&2
            echo "setup: not root and no password-less sudo; install them with: sudo apt-get install$missing" >&2
            exit 1
        fi
    fi
    echo "setup: installing Debian packages:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_venv() {
    local stamp=".venv/.tinyrank-installed"
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating .venv"
        "$PYTHON" -m venv .venv
    fi
    # Reinstall only when the dependency list changed since the last install.
    if [ -f "$stamp" ] && cmp -s pyproject.toml "$stamp"; then
        return 0
    fi
    echo "setup: installing tinyrank and its dependencies into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    cp pyproject.toml "$stamp"
}

# tf_keras (Keras 2), for the LSTM tests only: TensorFlow 2.21's converter fuses its LSTM into
# UNIDIRECTIONAL_SEQUENCE_LSTM, a Keras 3 LSTM it does not. --no-deps: it depends on the full
# `tensorflow` wheel, which would land beside tensorflow-cpu; the `tensorflow` module is there.
install_tf_keras() {
    .venv/bin/python -m pip show -q tf-keras >/dev/null 2>&1 && return 0
    echo "setup: installing tf-keras (no dependencies) for the LSTM tests"
    .venv/bin/python -m pip install -q --no-deps "tf-keras~=2.21.0"
}

install_debs
install_venv
install_tf_keras
echo "setup: ready ($(.venv/bin/python -c 'import tensorflow as tf; print("tensorflow", tf.__version__)' 2>/dev/null | tail -1), $(arm-none-eabi-gcc --version | head -1), $(qemu-system-arm --version | head -1))"
