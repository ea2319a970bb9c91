"""Opening a PortAudio input stream for ``MicSource``.

The device's native rate is tried first, then the first fallback rate it accepts; PortAudio's
error codes become one-line ``AudioDeviceError``s that say what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamer.errors import AudioDeviceError
from streamer.live.devices import InputDevice

__all__ = ["open_input_stream"]

_PORTAUDIO_BUSY = -9985  # paDeviceUnavailable
_PORTAUDIO_BAD_RATE = -9997  # paInvalidSampleRate
_FALLBACK_RATES = (48000, 44100, 32000, 16000)


def open_input_stream(
    sounddevice: Any,
    device: InputDevice,
    block_ms: int,
    callback: Callable[..., None],
    finished_callback: Callable[[], None],
) -> tuple[Any, int]:
    """Start an input stream at the native rate, or the first fallback rate it accepts."""
    native = int(device.default_samplerate)
    rates = [native, *(rate for rate in _FALLBACK_RATES if rate != native)]
    for rate in rates:
        try:
            stream = sounddevice.InputStream(
                device=device.index,
                samplerate=rate,
                channels=device.capture_channels,
                dtype="float32",
                blocksize=max(1, rate * block_ms // 1000),
                callback=callback,
                finished_callback=finished_callback,
            )
            try:
                stream.start()
            except BaseException:
                stream.close(ignore_errors=True)
                raise
            return stream, rate
        except sounddevice.PortAudioError as error:
            code = error.args[1] if len(error.args) > 1 else None
            if code == _PORTAUDIO_BAD_RATE and rate != rates[-1]:
                continue
            raise _device_error(device, error, code) from None
    raise AssertionError("unreachable: the last rate either opens or raises")


def _device_error(device: InputDevice, error: Exception, code: int | None) -> AudioDeviceError:
    if code == _PORTAUDIO_BUSY:
        return AudioDeviceError(
            f"input device {device.name!r} is busy or unavailable; close the program using it "
            "or pick another with --device"
        )
    detail = str(error.args[0]) if error.args else str(error)
    return AudioDeviceError(
        f"cannot open input device {device.name!r} at {device.default_samplerate:.0f} Hz, "
        f"{device.capture_channels} channel(s): {detail}"
    )
