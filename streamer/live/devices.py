"""Input devices: what can be recorded from, and which one a ``--device`` string means.

Two sources of truth are merged:

- PortAudio (through sounddevice): hardware and ALSA devices, by index. On a Linux desktop
  these are mostly ``pulse`` and ``default``, which both record from the PulseAudio/PipeWire
  default source.
- PulseAudio/PipeWire sources (through ``pactl``), listed only when PortAudio has a ``pulse``
  device to reach them with: each microphone, and each output's ``.monitor`` (what the
  speakers play). Opening one opens the ``pulse`` device with ``PULSE_SOURCE`` set to it.

sounddevice is imported lazily, so a missing PortAudio library only matters once a device is
actually used, and then as a one-line ``DependencyError``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType

from streamer.errors import AudioDeviceError, DependencyError

MAX_CAPTURE_CHANNELS = 2  # ALSA plugin devices report 32+ "channels"; speech is in the first two
_MONITOR_WORDS = ("monitor", "loopback", "stereo mix", "what u hear")
_PACTL_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class InputDevice:
    """One thing ``MicSource`` can record from."""

    index: int  # PortAudio device index to open
    name: str  # PortAudio device name, or the PulseAudio source name
    host_api: str  # "ALSA", "CoreAudio", ..., or "PulseAudio" for a pactl source
    default_samplerate: float  # Hz, the device's native rate
    max_input_channels: int
    is_monitor: bool  # records what an output plays, not a microphone
    is_default: bool
    pulse_source: str = ""  # non-empty: open ``index`` with PULSE_SOURCE set to this source

    @property
    def capture_channels(self) -> int:
        """Channels to open: the device's own count, capped (see MAX_CAPTURE_CHANNELS)."""
        return max(1, min(self.max_input_channels, MAX_CAPTURE_CHANNELS))


def import_sounddevice() -> ModuleType:
    """``import sounddevice``, turning a missing PortAudio library into a ``DependencyError``."""
    try:
        import sounddevice
    except OSError as error:
        raise DependencyError(
            f"cannot load the PortAudio library ({error}); "
            "install libportaudio2 (apt-get install libportaudio2)"
        ) from None
    return sounddevice


def refresh_portaudio() -> None:
    """Make PortAudio scan devices again: it lists them once, at initialisation.

    Closes every stream of this process; call it only with none open. sounddevice offers no
    public call for this; its maintainer recommends these two
    (https://github.com/spatialaudio/python-sounddevice/issues/125).
    """
    sounddevice = import_sounddevice()
    sounddevice._terminate()
    sounddevice._initialize()


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, then the PulseAudio sources."""
    sounddevice = import_sounddevice()
    try:
        raw_devices = sounddevice.query_devices()
        host_apis = sounddevice.query_hostapis()
        default_input = sounddevice.default.device[0]
    except sounddevice.PortAudioError as error:
        raise AudioDeviceError(f"cannot list audio devices: {error}") from None
    devices = []
    for raw in raw_devices:
        if raw["max_input_channels"] <= 0:
            continue
        devices.append(
            InputDevice(
                index=int(raw["index"]),
                name=str(raw["name"]),
                host_api=str(host_apis[raw["hostapi"]]["name"]),
                default_samplerate=float(raw["default_samplerate"]),
                max_input_channels=int(raw["max_input_channels"]),
                is_monitor=any(word in raw["name"].lower() for word in _MONITOR_WORDS),
                is_default=raw["index"] == default_input,
            )
        )
    pulse = next((device for device in devices if device.name == "pulse"), None)
    if pulse is not None:
        devices += _pulse_sources(pulse.index)
    return devices


def resolve_input_device(spec: str) -> InputDevice:
    """The device meant by ``spec``: "" (the default), an index, "monitor", or a name part.

    A name matches case-insensitively as a substring; an exact name wins over partial ones.
    Raises ``AudioDeviceError`` listing the valid choices when nothing or several match.
    """
    devices = list_input_devices()
    if not devices:
        raise AudioDeviceError(
            "no audio input device found; on Linux install libasound2-plugins and check that "
            "PulseAudio or PipeWire is running (pactl info)"
        )
    spec = spec.strip()
    if spec == "":
        return _default_device(devices)
    if spec.isdigit():
        matches = [
            device for device in devices if device.index == int(spec) and not device.pulse_source
        ]
        if not matches:
            raise AudioDeviceError(f"no input device with index {spec}; {_choices(devices)}")
        return matches[0]
    if spec.lower() == "monitor":
        return _monitor_device(devices)
    exact = [device for device in devices if device.name.lower() == spec.lower()]
    if exact:
        return exact[0]
    matches = [device for device in devices if spec.lower() in device.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(f"no input device matches {spec!r}; {_choices(devices)}")
    names = ", ".join(repr(device.name) for device in matches)
    raise AudioDeviceError(f"{spec!r} matches several input devices ({names}); be more specific")


def pulse_source_exists(source: str) -> bool | None:
    """Whether the PulseAudio/PipeWire source is there now; None when pactl cannot tell."""
    listing = _pactl("list", "short", "sources")
    if listing is None:
        return None
    return any(
        _fields(line)[1] == source for line in listing.splitlines() if len(_fields(line)) > 1
    )


def _default_device(devices: list[InputDevice]) -> InputDevice:
    for device in devices:
        if device.is_default and not device.pulse_source:
            return device
    portaudio = [device for device in devices if not device.pulse_source]
    if portaudio:
        return portaudio[0]
    raise AudioDeviceError(f"no default input device; pick one with --device. {_choices(devices)}")


def _monitor_device(devices: list[InputDevice]) -> InputDevice:
    """The default output's monitor if there is one, else the first monitor found."""
    monitors = [device for device in devices if device.is_monitor]
    if not monitors:
        raise AudioDeviceError(
            "no monitor/loopback input found; on PulseAudio/PipeWire every output has one "
            "(pactl list short sources), elsewhere enable 'Stereo Mix' or a loopback device"
        )
    default_sink = (_pactl("get-default-sink") or "").strip()
    for device in monitors:
        if default_sink and device.pulse_source == f"{default_sink}.monitor":
            return device
    return monitors[0]


def _pulse_sources(pulse_index: int) -> list[InputDevice]:
    """PulseAudio sources as devices reached through the ALSA ``pulse`` device."""
    listing = _pactl("list", "short", "sources")
    if listing is None:
        return []
    default_source = (_pactl("get-default-source") or "").strip()
    devices = []
    for line in listing.splitlines():
        fields = _fields(line)
        if len(fields) < 4:
            continue
        name, spec = fields[1], fields[3].split()
        rate = next((int(part[:-2]) for part in spec if part.endswith("Hz")), 48000)
        channels = next((int(part[:-2]) for part in spec if part.endswith("ch")), 2)
        devices.append(
            InputDevice(
                index=pulse_index,
                name=name,
                host_api="PulseAudio",
                default_samplerate=float(rate),
                max_input_channels=channels,
                is_monitor=name.endswith(".monitor"),
                is_default=name == default_source,
                pulse_source=name,
            )
        )
    return devices


def _fields(line: str) -> list[str]:
    """``pactl list short`` columns are tab-separated; the sample spec keeps its spaces."""
    return line.split("\t")


def _pactl(*args: str) -> str | None:
    """stdout of ``pactl args``, or None when pactl is missing or no server answers."""
    pactl = shutil.which("pactl")
    if pactl is None:
        return None
    try:
        result = subprocess.run(
            [pactl, *args], capture_output=True, text=True, timeout=_PACTL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _choices(devices: list[InputDevice]) -> str:
    listed = ", ".join(f"{d.index}: {d.name!r}" for d in devices if not d.pulse_source)
    sources = ", ".join(repr(d.name) for d in devices if d.pulse_source)
    text = f"input devices: {listed or 'none'}"
    if sources:
        text += f"; PulseAudio sources: {sources}"
    return text + " (see `streamer devices`)"
