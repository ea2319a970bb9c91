"""``streamer bench stream`` through the command line on the JFK item of ``../shared/eval``,
and its metric helpers on hand-made words."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.bench.stream_items import SpeechSegment, read_stream_items
from streamer.bench.stream_metrics import commit_latencies, final_latencies, seam_repeats
from streamer.bench.stream_report import COLUMNS
from streamer.errors import ConfigError
from streamer.types import CommittedWord

REPO = Path(__file__).resolve().parents[2]
EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"

needs_eval = pytest.mark.skipif(
    not (EVAL_DIR / "manifest.jsonl").exists(),
    reason=f"evaluation audio not found at {EVAL_DIR} (../shared/eval next to the repo)",
)


def _word(start_s: float, end_s: float, emitted_at_s: float, text: str = " w") -> CommittedWord:
    return CommittedWord(text, int(start_s * 16000), int(end_s * 16000), emitted_at_s)


# --- metrics ------------------------------------------------------------------------------------


def test_commit_latency_is_emit_time_minus_word_end():
    words = [_word(0.0, 0.5, 1.25), _word(0.5, 1.0, 1.25)]
    assert commit_latencies(words).tolist() == pytest.approx([0.75, 0.25])


def test_final_latency_takes_the_last_word_whose_midpoint_is_in_the_segment():
    """A word straddling the boundary belongs to the segment that holds its midpoint; a segment
    without words is counted as missing, not as zero latency."""
    segments = [SpeechSegment(0.0, 2.0), SpeechSegment(2.5, 4.0), SpeechSegment(5.0, 6.0)]
    words = [
        _word(0.0, 1.0, 1.5),
        _word(1.8, 2.4, 3.0),  # midpoint 2.1: in no segment
        _word(1.2, 2.0, 2.25),  # midpoint 1.6: first segment, emitted last of it
        _word(2.6, 3.9, 4.5),
    ]
    latencies, missing = final_latencies(words, segments)
    assert latencies == pytest.approx([0.25, 0.5])
    assert missing == 1


def test_file_without_segments_is_one_segment_ending_at_the_last_word():
    latencies, missing = final_latencies([_word(0.0, 1.0, 1.2), _word(1.0, 3.0, 3.5)], [])
    assert latencies == pytest.approx([0.5]) and missing == 0
    assert final_latencies([], []) == ([], 1)


def test_seam_repeats_count_phrases_said_twice_only_by_the_stream():
    offline = "No, no, I said the river bank. Has never been surpassed."
    assert seam_repeats(offline, offline) == 0  # the speaker's own "no, no" is one word
    doubled = "Of about 1455. Has never been surpassed. Has never been surpassed. Printing then"
    assert seam_repeats(doubled, "of about 1455 has never been surpassed printing then") == 1
    # a repeat the speaker made (in the offline text too) is not a seam repeat
    spoken = "we will fight on the beaches, on the beaches"
    assert seam_repeats(spoken, spoken) == 0
    assert seam_repeats("red fox red fox blue sky blue sky", "red fox blue sky") == 2


def test_a_held_stop_is_no_late_word():
    """A stop committed on its own at the end of an utterance is punctuation: the latencies
    count the words."""
    words = [_word(0.0, 1.0, 1.2), _word(1.0, 1.0, 1.9, text=".")]
    assert commit_latencies(words).tolist() == pytest.approx([0.2])
    assert final_latencies(words, [SpeechSegment(0.0, 1.0)]) == (pytest.approx([0.2]), 0)


def test_sets_are_read_one_at_a_time_or_all_together(tmp_path):
    from streamer.bench.stream_items import stream_items

    manifest = tmp_path / "manifest.jsonl"
    lines = [
        '{"id": "lf", "path": "lf.wav", "text": "x", "set": "longform", "duration_s": 9}',
        '{"id": "s1", "path": "s1.wav", "text": "y", "set": "session", "duration_s": 5,'
        ' "segments": [{"start_s": 0.5, "end_s": 2.0}]}',
    ]
    manifest.write_text("\n".join(lines) + "\n")
    (session,) = stream_items(manifest, "session", tmp_path)
    assert (session.id, session.group, session.segments) == (
        "s1",
        "session",
        (SpeechSegment(0.5, 2.0),),
    )
    with pytest.raises(ConfigError, match="no LibriSpeech chapters"):
        stream_items(manifest, "all", tmp_path)  # every set must be there


def test_peak_rss_is_judged_on_the_process_peak():
    """The 250 MB target applies to ru_maxrss (model load included), or to psutil's highest
    sample where the platform has no ru_maxrss."""
    from streamer.bench.stream_metrics import Row
    from streamer.bench.stream_report import TARGET_CELLS, verdicts

    def verdict(**cost) -> str:
        return verdicts(Row(name="overall", audio_s=60.0, words=100, **cost), None)["maxrss MB"]

    assert TARGET_CELLS["maxrss MB"] == "<= 250"
    assert verdict(peak_rss_mb=200.0, maxrss_mb=249.9) == "yes"
    assert verdict(peak_rss_mb=200.0, maxrss_mb=250.1) == "NO"
    assert verdict(peak_rss_mb=251.0, maxrss_mb=None) == "NO"
    assert verdict() == "-"


def test_limit_must_be_positive(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"id": "a", "path": "a.wav", "text": "x", "set": "librispeech"}\n')
    with pytest.raises(ConfigError, match="--limit must be at least 1"):
        read_stream_items(manifest, limit=0)
    with pytest.raises(ConfigError, match="no items of set 'longform'"):
        read_stream_items(manifest)


# --- the command, for real ----------------------------------------------------------------------


def _row(table: list[str], name: str) -> dict[str, str]:
    """The cells of the markdown row whose first cell is ``name``, keyed by column."""
    for line in table:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return dict(zip(COLUMNS, cells))
    raise AssertionError(f"no row {name!r} in:\n" + "\n".join(table))


@pytest.mark.eval
@needs_eval
def test_bench_stream_on_jfk_through_the_cli():
    """One long-form file at fast pace on a modelled clock: every column is there, the
    numbers are sane, the report says whose clock it was, and the silence-and-noise row
    commits nothing."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "bench",
            "stream",
            "--manifest",
            str(EVAL_DIR / "manifest.jsonl"),
            "--pace",
            "fast",
            "--virtual-cpu",
            "2.5",
            "--limit",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.search(
        r"load average \(1/5/15 min\) before [\d.]+ [\d.]+ [\d.]+ / after", result.stdout
    )
    assert "pace fast, step cost modelled at 2.5x the reference CPU" in result.stdout
    header = next(line for line in lines if line.startswith("| file"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(COLUMNS)

    jfk = _row(lines, "jfk")
    assert jfk == {**_row(lines, "overall"), "file": "jfk"}  # one file: overall is that file
    assert 18 <= int(jfk["words"]) <= 26  # the sentence has 22 words
    mean, p50, p90 = (float(jfk[f"commit {k} s"]) for k in ("mean", "p50", "p90"))
    assert 0.0 <= p50 <= p90 < 10.0 and 0.0 <= mean < 10.0
    assert -1.0 < float(jfk["EoS->final p50 s"]) < 10.0
    assert jfk["seen mean s"] == "-"  # fast pace: no wall-clock receipt times
    assert float(jfk["WER% stream"]) < 15.0 and float(jfk["WER% offline"]) < 15.0
    # faster-whisper read the same file offline, VAD off and on; delta is to the best reading
    offline = [float(jfk[column]) for column in ("WER% offline", "WER% fw", "WER% fw vad")]
    assert max(offline) < 15.0
    delta = float(jfk["WER% stream"]) - min(offline)
    assert float(jfk["delta pts"]) == pytest.approx(delta, abs=0.01)
    assert 0.0 < float(jfk["CPU s/audio s"]) < 5.0
    # psutil's RSS and ru_maxrss are counted a little differently: allow a few MB
    assert 50 < float(jfk["peak RSS MB"]) <= float(jfk["maxrss MB"]) + 5

    quiet = _row(lines, "silence and faint noise (fast)")
    assert quiet["words"] == "0" and float(quiet["audio s"]) == 240.0
    assert _row(lines, "target")["commit mean s"] == "<= 1.0"
    assert _row(lines, "target")["maxrss MB"] == "<= 250"
    peak_verdict = "yes" if float(jfk["maxrss MB"]) <= 250 else "NO"
    assert _row(lines, "meets target (overall)")["maxrss MB"] == peak_verdict
    reference = _row(lines, "LocalAgreement streamer, same weights")
    assert (reference["commit mean s"], reference["commit p90 s"]) == ("2.2", "2.6")
    assert _row(lines, "meets target (overall)")["words"] == "yes"


def test_chapters_join_utterances_and_leave_out_the_long_form_ones(tmp_path):
    """``--chapters``: each chapter's utterances in order with 0.5 s between; a chapter that
    is already a long-form file is not played again."""
    import json

    import numpy as np
    import soundfile

    from streamer.bench.stream_items import CHAPTER_GAP_S, chapter_items

    records = []
    for chapter, n in (("11", 2), ("22", 1)):
        for index in range(n):
            utterance = f"7-{chapter}-{index:04d}"
            path = tmp_path / f"{utterance}.wav"
            soundfile.write(path, np.full(8000 * (index + 1), 0.1, np.float32), 16000)
            records.append(
                {
                    "id": f"test-other/{utterance}",
                    "path": path.name,
                    "text": f"WORDS {utterance}",
                    "set": "librispeech",
                    "subset": "test-other",
                    "speaker": "7",
                    "chapter": chapter,
                    "utterance": utterance,
                }
            )
    records.reverse()  # the manifest order is not the utterance order
    longform = {"id": "lf", "path": "lf.wav", "text": "", "set": "longform", "duration_s": 1}
    longform["segments"] = [{"id": "7-22-0000", "start_s": 0.0, "end_s": 0.5}]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*records, longform]))
    out = tmp_path / "joined"
    out.mkdir()
    (item,) = chapter_items(manifest, out)
    assert item.id == "test-other_7-11"
    assert item.reference == "WORDS 7-11-0000 WORDS 7-11-0001"
    assert item.duration_s == pytest.approx(0.5 + CHAPTER_GAP_S + 1.0)
    assert item.segments == (SpeechSegment(0.0, 0.5), SpeechSegment(1.0, 2.0))
    samples, rate = soundfile.read(item.path)
    assert rate == 16000 and len(samples) == 32000
    assert np.all(samples[8000:16000] == 0) and np.all(samples[16000:] > 0)
