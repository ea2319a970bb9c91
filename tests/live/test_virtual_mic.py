"""The real microphone path, end to end, with a PulseAudio null sink as the microphone.

espeak-ng speech is played into the sink with paplay and recorded from the sink's monitor by
``MicSource`` through PortAudio -> ALSA -> the pulse plugin, exactly as a desktop microphone is.
Needs pulseaudio, pulseaudio-utils, libasound2-plugins, libportaudio2 and espeak-ng; skipped
with the reason otherwise. A null sink's monitor takes about 2 s to deliver its first block.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import (
    espeak_wav,
    needs_espeak,
    needs_pulseaudio,
    rms_db,
    virtual_microphone,
)

from streamer.audio import SAMPLE_RATE
from streamer.audiofile import read_audio
from streamer.errors import AudioDeviceError
from streamer.live.devices import list_input_devices, refresh_portaudio, resolve_input_device
from streamer.live.mic import DeviceLostError, MicSource
from streamer.types import AudioBlock
from streamer.vad import detect_speech_spans

pytestmark = [needs_pulseaudio, needs_espeak]

SENTENCE = "The birch canoe slid on the smooth planks."
FIRST_BLOCK_S = 10.0


@pytest.fixture(scope="module")
def mic():
    with virtual_microphone() as virtual:
        refresh_portaudio()  # PortAudio lists devices once; the server may have just started
        if not any(device.pulse_source == virtual.monitor for device in list_input_devices()):
            pytest.skip("PortAudio has no 'pulse' device (apt-get install libasound2-plugins)")
        yield virtual


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory) -> Path:
    # 22.05 kHz, espeak's own rate: PulseAudio and MicSource each resample on the way.
    return espeak_wav(SENTENCE, tmp_path_factory.mktemp("speech") / "sentence.wav", rate=22050)


def _first_block(source: MicSource) -> AudioBlock:
    deadline = time.monotonic() + FIRST_BLOCK_S
    while time.monotonic() < deadline:
        block = source.read(0.2)
        if block is not None:
            return block
    pytest.fail(f"no audio from {source.name!r} within {FIRST_BLOCK_S} s")


def _record(source: MicSource, seconds: float) -> list[AudioBlock]:
    blocks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        block = source.read(0.2)
        if block is not None:
            blocks.append(block)
    return blocks


def _assert_contiguous(blocks: list[AudioBlock]) -> None:
    for before, after in zip(blocks[:-1], blocks[1:], strict=True):
        assert after.start_sample == before.end_sample
        assert after.captured_at_s >= before.captured_at_s


def _normalized_xcorr_peak(captured: np.ndarray, reference: np.ndarray) -> tuple[float, int, float]:
    """(peak normalized correlation, its lag in samples, median |correlation|) via FFT."""
    size = 1 << int(np.ceil(np.log2(len(captured) + len(reference))))
    spectrum = np.fft.rfft(captured, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)[: len(captured)]
    # Normalize by the energy of the reference and of each captured window under it.
    cumulative = np.concatenate([[0.0], np.cumsum(captured.astype(np.float64) ** 2)])
    ends = np.minimum(np.arange(len(captured)) + len(reference), len(captured))
    window_energy = cumulative[ends] - cumulative[: len(captured)]
    corr = corr / np.sqrt(np.sum(reference**2) * np.maximum(window_energy, 1e-12))
    lag = int(np.argmax(corr))
    return float(corr[lag]), lag, float(np.median(np.abs(corr)))


def test_speech_played_into_the_sink_is_captured_from_its_monitor(mic, sentence_wav):
    reference = read_audio(sentence_wav)
    with MicSource(mic.monitor, block_ms=30) as source:
        assert source.native_rate > 0 and source.channels in (1, 2)
        blocks = [_first_block(source), *_record(source, 0.5)]
        silence_end = blocks[-1].end_sample
        player = mic.play(sentence_wav, wait=False)
        blocks += _record(source, len(reference) / SAMPLE_RATE + 1.0)
        assert player.wait(timeout=10) == 0
    assert source.closed
    _assert_contiguous(blocks)
    audio = np.concatenate([block.samples for block in blocks])

    # Before the playback: digital silence. During it: speech at espeak's level.
    assert rms_db(audio[:silence_end]) < -80
    assert rms_db(audio[silence_end:]) > -40

    # The VAD finds one span, about as long as it finds in the file itself.
    (span,) = detect_speech_spans(audio)
    padding = np.zeros(SAMPLE_RATE, dtype=np.float32)  # room for the pre-roll, as when captured
    (file_span,) = detect_speech_spans(np.concatenate([padding, reference, padding]))
    assert span.start_sample >= silence_end - SAMPLE_RATE // 2
    length = span.end_sample - span.start_sample
    file_length = file_span.end_sample - file_span.start_sample
    assert abs(length - file_length) < 0.2 * SAMPLE_RATE, (length, file_length)

    # And it is the same waveform: a clear cross-correlation peak after the playback began.
    peak, lag, typical = _normalized_xcorr_peak(audio, reference)
    facts = f"peak {peak:.3f} at lag {lag}, playback from {silence_end}, typical {typical:.4f}"
    assert peak > 0.8, facts  # measured: 0.98-0.99
    assert peak > 10 * typical, facts
    assert silence_end - SAMPLE_RATE // 10 <= lag <= silence_end + SAMPLE_RATE, facts


def test_device_loss_is_reported_and_capture_resumes_after_reopen():
    with virtual_microphone() as lost_mic, MicSource(lost_mic.monitor) as source:
        _first_block(source)
        last_end = _record(source, 0.3)[-1].end_sample

        lost_mic.unload()
        unloaded_at = time.monotonic()
        with pytest.raises(DeviceLostError, match="disappeared"):
            while time.monotonic() - unloaded_at < 10:
                block = source.read(0.2)
                if block is not None:
                    last_end = block.end_sample
        assert time.monotonic() - unloaded_at < 3.0, "reported promptly, not after a hang"
        assert source.lost
        with pytest.raises(DeviceLostError):
            source.read(0.1)  # stays reported until reopened
        with pytest.raises(AudioDeviceError, match="no input device matches"):
            source.reopen()  # still missing: a one-line error, the caller retries later
        with pytest.raises(DeviceLostError):
            source.read(0.1)  # a failed reopen leaves it reported, never a silent wait

        lost_mic.load()
        source.reopen()
        assert not source.lost
        resumed = _first_block(source)
        assert resumed.start_sample == last_end, "sample indices carry on without a jump"
        assert len(_record(source, 0.3)) >= 5


def test_pulse_source_variable_routes_the_pulse_device(mic, sentence_wav, monkeypatch):
    """The documented manual route: PULSE_SOURCE=<monitor> with the ALSA 'pulse' device."""
    monkeypatch.setenv("PULSE_SOURCE", mic.monitor)
    with MicSource("pulse") as source:
        assert source.name == "pulse"
        _first_block(source)
        player = mic.play(sentence_wav, wait=False)
        blocks = _record(source, 3.0)
        player.wait(timeout=10)
    audio = np.concatenate([block.samples for block in blocks])
    assert rms_db(audio) > -45
    assert len(detect_speech_spans(audio)) == 1


def test_a_full_queue_counts_dropped_blocks_and_keeps_time_aligned(mic):
    """Blocks lost while the consumer stalls become silence of the same length, not a jump."""
    with MicSource(mic.monitor, block_ms=30, queue_blocks=2) as source:
        first = _first_block(source)
        time.sleep(1.5)  # the consumer stalls; the callback keeps going
        blocks = [first, *_record(source, 0.5)]
        elapsed = blocks[-1].captured_at_s - first.captured_at_s
    assert source.dropped_blocks >= 20
    _assert_contiguous(blocks)
    produced = blocks[-1].end_sample - first.end_sample
    assert produced == pytest.approx(elapsed * SAMPLE_RATE, abs=0.15 * SAMPLE_RATE)


def test_devices_list_the_monitor_and_monitor_keyword_picks_one(mic):
    devices = {device.name: device for device in list_input_devices()}
    monitor = devices[mic.monitor]
    assert monitor.is_monitor and monitor.pulse_source == mic.monitor
    assert monitor.default_samplerate > 0 and monitor.max_input_channels >= 1
    picked = resolve_input_device("monitor")
    assert picked.is_monitor and picked.pulse_source.endswith(".monitor")
    assert resolve_input_device(mic.monitor.upper()) == monitor  # case-insensitive
