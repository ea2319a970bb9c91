"""Sinks on real files, real pipes and real child processes (tmp dirs only)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sink_fixtures import cw, endpoint

from streamer.errors import SinkError
from streamer.output.sinks import EmitLogSink, MultiSink, PlainSink
from streamer.output.subtitles import (
    Cue,
    format_clock,
    format_srt_time,
    format_vtt_time,
    read_cues,
    write_subtitles,
)
from streamer.output.transcript import TranscriptSink, session_stem

ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# --- time formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt", "clock"),
    [
        (0.0, "00:00:00,000", "00:00:00.000", "00:00:00"),
        (1.5, "00:00:01,500", "00:00:01.500", "00:00:01"),
        (59.9996, "00:01:00,000", "00:01:00.000", "00:00:59"),
        (3661.007, "01:01:01,007", "01:01:01.007", "01:01:01"),
        (-0.25, "00:00:00,000", "00:00:00.000", "00:00:00"),
        (360_000.0, "100:00:00,000", "100:00:00.000", "100:00:00"),
    ],
    ids=["zero", "half", "round-up-carries", "hour", "negative", "100h"],
)
def test_time_formats(seconds, srt, vtt, clock):
    assert format_srt_time(seconds) == srt
    assert format_vtt_time(seconds) == vtt
    assert format_clock(seconds) == clock


def test_session_stem_is_a_timestamp():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}", session_stem())


# --- plain output ---------------------------------------------------------------------------


def test_plain_sink_writes_one_line_per_utterance():
    out = io.StringIO()
    sink = PlainSink(out)
    sink.on_commit((cw(" Hello", 0, 0.5),))
    sink.on_commit((cw(" big", 0.5, 0.8), cw(" world.", 0.8, 1.2)))
    assert out.getvalue() == "Hello big world."  # no newline until the utterance ends
    sink.on_endpoint(endpoint(1.2))
    sink.on_endpoint(endpoint(2.0))  # an utterance without words adds no blank line
    sink.on_commit((cw(" Next", 3, 3.5),))
    sink.close()
    sink.close()
    assert out.getvalue() == "Hello big world.\nNext\n"


def test_plain_sink_flushes_each_commit_through_a_pipe():
    """`streamer live --plain | other-program` must see text as it commits, not at exit."""
    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "w", buffering=1 << 16)  # a block-buffered stdout, as in a pipe
    os.set_blocking(read_fd, False)
    try:
        sink = PlainSink(writer)
        sink.on_commit((cw(" streaming", 0, 0.5),))
        assert os.read(read_fd, 100) == b"streaming"
        sink.on_endpoint(endpoint())
        assert os.read(read_fd, 100) == b"\n"
    finally:
        writer.close()
        os.close(read_fd)


def test_plain_sink_reports_a_closed_reader_as_sink_error():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    writer = os.fdopen(write_fd, "w")
    sink = PlainSink(writer)
    with pytest.raises(SinkError, match="broken pipe"):
        sink.on_commit((cw(" lost", 0, 0.5),))
    try:
        writer.close()
    except BrokenPipeError:
        pass


# --- emit log -------------------------------------------------------------------------------


def test_emit_log_has_one_json_line_per_word(tmp_path):
    path = tmp_path / "emit.jsonl"
    sink = EmitLogSink(path)
    sink.on_commit((cw(" one", 0.5, 1.0, emitted_at_s=1.75), cw(" two", 1.0, 1.25, 1.75)))
    sink.on_endpoint(endpoint(1.25))
    sink.on_commit((cw(" three", 2.0, 2.5, 3.125),))
    sink.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {"emit_s": 1.75, "start_s": 0.5, "end_s": 1.0, "text": " one", "language": "en"},
        {"emit_s": 1.75, "start_s": 1.0, "end_s": 1.25, "text": " two", "language": "en"},
        {"emit_s": 3.125, "start_s": 2.0, "end_s": 2.5, "text": " three", "language": "en"},
    ]


def test_emit_log_in_a_missing_place_is_a_one_line_sink_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError) as caught:
        EmitLogSink(blocker / "emit.jsonl")
    assert str(blocker / "emit.jsonl") in str(caught.value)
    assert "\n" not in str(caught.value)


# --- meeting transcript ---------------------------------------------------------------------


def meeting(sink: TranscriptSink) -> None:
    sink.on_commit((cw(" Good", 1.0, 1.4, 2.0), cw(" morning", 1.4, 2.0, 2.0)))
    sink.on_commit((cw(" everyone.", 2.0, 2.9, 3.1),))
    sink.on_endpoint(endpoint(2.9))
    sink.on_commit((cw(" Let's", 3723.5, 3724.0, 3725.0), cw(" start.", 3724.0, 3724.25, 3725)))
    sink.on_endpoint(endpoint(3724.25))


def test_transcript_sink_writes_jsonl_markdown_srt_and_vtt(tmp_path):
    sink = TranscriptSink(tmp_path / "out", stem="standup")
    meeting(sink)
    sink.close()
    sink.close()
    base = tmp_path / "out" / "standup"
    records = [json.loads(line) for line in base.with_suffix(".jsonl").read_text().splitlines()]
    english = {"language": "en"}
    assert records == [
        {"utterance": 0, "text": " Good morning", "start_s": 1.0, "end_s": 2.0, "emit_s": 2.0}
        | english,
        {"utterance": 0, "text": " everyone.", "start_s": 2.0, "end_s": 2.9, "emit_s": 3.1}
        | english,
        {
            "utterance": 1,
            "text": " Let's start.",
            "start_s": 3723.5,
            "end_s": 3724.25,
            "emit_s": 3725,
        }
        | english,
    ]
    assert base.with_suffix(".md").read_text() == (
        "# Transcript standup\n\n[00:00:01] Good morning everyone.\n\n[01:02:03] Let's start.\n"
    )
    assert base.with_suffix(".srt").read_text() == (
        "1\n00:00:01,000 --> 00:00:02,900\nGood morning everyone.\n\n"
        "2\n01:02:03,500 --> 01:02:04,250\nLet's start.\n\n"
    )
    assert base.with_suffix(".vtt").read_text() == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.900\nGood morning everyone.\n\n"
        "01:02:03.500 --> 01:02:04.250\nLet's start.\n\n"
    )


def test_transcript_notes_mark_where_the_language_changes(tmp_path):
    sink = TranscriptSink(tmp_path, stem="mixed")
    for index, language in enumerate(["de", "de", "en", "fr"]):
        start = 10.0 * index
        sink.on_commit((cw(f" {language}{index}", start, start + 1, start + 1.5, language),))
        sink.on_endpoint(endpoint(start + 1))
    sink.close()
    records = [json.loads(line) for line in (tmp_path / "mixed.jsonl").read_text().splitlines()]
    assert [record["language"] for record in records] == ["de", "de", "en", "fr"]
    # a session starts in English: the first German utterance is marked, the second is not
    assert (tmp_path / "mixed.md").read_text() == (
        "# Transcript mixed\n\n[00:00:00] (de) de0\n\n[00:00:10] de1\n\n"
        "[00:00:20] (en) en2\n\n[00:00:30] (fr) fr3\n"
    )


def test_transcript_sink_default_stem_and_no_overwrite(tmp_path):
    first = TranscriptSink(tmp_path)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}", first.stem)
    assert first.jsonl_path == tmp_path / f"{first.stem}.jsonl"
    first.close()
    second = TranscriptSink(tmp_path, stem=first.stem)
    second.close()
    assert second.stem == f"{first.stem}-2"
    assert {p.suffix for p in tmp_path.iterdir()} == {".jsonl", ".md", ".srt", ".vtt"}


def test_unwritable_transcript_directory_is_a_one_line_sink_error(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a directory")
    with pytest.raises(SinkError) as caught:
        TranscriptSink(blocker / "meetings")
    message = str(caught.value)
    assert str(blocker / "meetings") in message and "--transcript" in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_transcript_directory_is_a_sink_error(tmp_path):
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(SinkError, match=str(tmp_path)):
            TranscriptSink(tmp_path)
    finally:
        tmp_path.chmod(stat.S_IRWXU)


def test_long_utterances_wrap_and_arrows_are_escaped_in_cues(tmp_path):
    jsonl = tmp_path / "s.jsonl"
    text = " a --> b" + " word" * 20
    jsonl.write_text(
        json.dumps({"utterance": 0, "text": text, "start_s": 0, "end_s": 0, "emit_s": 1}) + "\n"
    )
    assert write_subtitles(jsonl, tmp_path / "s.srt", tmp_path / "s.vtt") == 1
    cue = (tmp_path / "s.vtt").read_text().split("\n\n")[1]
    header, *lines = cue.splitlines()
    assert header == "00:00:00.000 --> 00:00:00.001"  # zero-length cue made visible
    assert len(lines) == 3 and all(len(line) <= 42 for line in lines)
    assert "-->" not in "".join(lines)


def test_subtitles_can_be_rebuilt_from_a_torn_jsonl(tmp_path):
    """A session killed mid-write leaves a partial last line; it is skipped, not fatal."""
    jsonl = tmp_path / "s.jsonl"
    good = {"utterance": 3, "text": " kept", "start_s": 1.0, "end_s": 1.5, "emit_s": 2.0}
    jsonl.write_text(json.dumps(good) + '\n{"utterance": 3, "text": " tor')
    assert list(read_cues(jsonl)) == [Cue(1.0, 1.5, "kept")]


FULL_DISK_CHILD = """
import json, os, resource, signal, sys
from streamer.errors import SinkError
from streamer.output.transcript import TranscriptSink
from streamer.types import CommittedWord

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
sink = TranscriptSink(sys.argv[1], stem="s")

def commit(i):
    word = CommittedWord(f" word{i}" + "x" * 40, i * 16000, i * 16000 + 8000, i + 0.5)
    try:
        sink.on_commit((word,))
        return "ok"
    except SinkError as error:
        return "error: " + str(error)

results = [commit(0), commit(1)]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sink.jsonl_path) + 40, hard))
results += [commit(2), commit(3)]
during = open(sink.jsonl_path).read()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
results.append(commit(4))
sink.close()

sink = TranscriptSink(sys.argv[1], stem="t")  # a session that ends while the disk is full
results.append(commit(0))
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sink.jsonl_path) + 40, hard))
results.append(commit(1))
try:
    sink.close()
    results.append("closed")
except SinkError as error:
    results.append("error: " + str(error))
print(json.dumps({"results": results, "during": during}))
"""


def test_write_failure_mid_session_keeps_the_file_whole_reports_once_and_recovers(tmp_path):
    child = run_child(FULL_DISK_CHILD, str(tmp_path))
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    first, second, failed, silent, recovered, *ended_full = report["results"]
    assert (first, second, silent, recovered) == ("ok", "ok", "ok", "ok")
    assert failed.startswith("error: cannot write transcript") and str(tmp_path) in failed
    # while failing, the file held exactly the two whole records written before
    during = report["during"].splitlines(keepends=True)
    assert len(during) == 2 and all(line.endswith("}\n") for line in during)
    assert [json.loads(line)["start_s"] for line in during] == [0.0, 1.0]
    # the failed records were kept and written, in order, once writing worked again
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(line)["start_s"] for line in lines] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert (tmp_path / "s.srt").read_text().count(" --> ") == 1
    # closing while the disk is still full says what was lost; what is on disk stays whole
    assert ended_full[0] == "ok" and ended_full[1].startswith("error: cannot write transcript")
    assert re.fullmatch(
        r"error: \d+ bytes of transcript .*t\.jsonl could not be written", ended_full[2]
    )
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 1


KILLED_CHILD = """
import sys, time
from streamer.output.transcript import TranscriptSink
from streamer.types import CommittedWord, Endpoint

sink = TranscriptSink(sys.argv[1], stem="killed")
index = 0
while True:
    word = CommittedWord(f" caption{index}", index * 8000, index * 8000 + 4000, time.monotonic())
    sink.on_commit((word,))
    print(word.text.strip(), flush=True)  # shown only after the sink returned
    if index % 5 == 4:
        sink.on_endpoint(Endpoint(index * 8000 + 4000, "silence", time.monotonic()))
    index += 1
"""


def test_every_caption_shown_before_kill_9_is_in_the_jsonl(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    shown = []
    try:
        deadline = time.monotonic() + 30
        while len(shown) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, "the child exited early"
            shown.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        rest, _ = child.communicate(timeout=10)
    shown += rest.split()
    assert child.returncode == -signal.SIGKILL
    assert len(shown) >= 40
    jsonl = tmp_path / "killed.jsonl"
    on_disk = [json.loads(line)["text"].strip() for line in jsonl.read_text().splitlines()]
    assert on_disk[: len(shown)] == shown
    # the killed session's subtitles can still be built from what is on disk
    assert write_subtitles(jsonl, tmp_path / "k.srt", tmp_path / "k.vtt") >= len(shown) // 5


# --- several sinks --------------------------------------------------------------------------


def test_multi_sink_feeds_every_sink_even_when_one_fails():
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    broken = os.fdopen(write_fd, "w")
    good = io.StringIO()
    sinks = MultiSink([PlainSink(broken), PlainSink(good)])
    with pytest.raises(SinkError):
        sinks.on_commit((cw(" still", 0, 0.5),))
    sinks.on_endpoint(endpoint())  # the broken sink has nothing open: no error
    assert good.getvalue() == "still\n"
    try:
        broken.close()
    except BrokenPipeError:
        pass
