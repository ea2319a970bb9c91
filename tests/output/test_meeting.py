"""Meeting mode as a user runs it: ``streamer live --mode meeting --transcript DIR``.

One session writes ``<stem>.jsonl`` and ``<stem>.md`` while it runs and ``<stem>.srt`` and
``<stem>.vtt`` at the end. Every file must say the same thing as standard output and the
word-level ``--emit-log``: same words, same utterances, same times.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_fixtures import require_espeak, speech_samples, wer

from streamer.output.subtitles import CUE_LINE_CHARS

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "Please call me tomorrow morning at nine.",
    "We are going to the market to buy some fresh bread and a big bag of green apples.",
    "The train leaves the station at noon.",
]
STEM = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?")
SRT_CUE = re.compile(
    r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n((?:.+\n)+)\n"
)
VTT_CUE = re.compile(
    r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n((?:.+\n)+)\n"
)


def meeting(audio: Path, transcript: Path, emit_log: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "streamer", "live", "--mode", "meeting", "--input", audio]
    command += ["--pace", "fast", "--plain", "--transcript", transcript, "--emit-log", emit_log]
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def _speech(path: Path, sentences: list[str]) -> Path:
    require_espeak()
    gap = np.zeros(int(16000 * 1.2), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for sentence in sentences:
        parts += [speech_samples(sentence), gap]
    soundfile.write(path, np.concatenate(parts), 16000)
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory, model_dir):
    """One meeting session over three utterances (the second one long enough to wrap)."""
    folder = tmp_path_factory.mktemp("meeting")
    audio = _speech(folder / "meeting.wav", SENTENCES)
    transcript, emit_log = folder / "transcripts", folder / "words.jsonl"
    result = meeting(audio, transcript, emit_log)
    assert result.returncode == 0, result.stderr
    (jsonl,) = transcript.glob("*.jsonl")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    words = [json.loads(line) for line in emit_log.read_text().splitlines()]
    return {
        "audio": audio,
        "dir": transcript,
        "stem": jsonl.stem,
        "records": records,
        "words": words,
        "lines": result.stdout.splitlines(),
        "stderr": result.stderr,
    }


def utterances(records: list[dict]) -> list[list[dict]]:
    groups: dict[int, list[dict]] = {}
    for record in records:
        groups.setdefault(record["utterance"], []).append(record)
    return [groups[key] for key in sorted(groups)]


def _seconds(parts) -> float:
    hours, minutes, seconds, millis = map(int, parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def test_one_session_writes_four_files_with_one_stem(session):
    names = sorted(path.name for path in session["dir"].iterdir())
    stem = session["stem"]
    assert STEM.fullmatch(stem), stem
    assert names == sorted(f"{stem}{ext}" for ext in (".jsonl", ".md", ".srt", ".vtt"))
    # meeting mode runs the fp32 model (configs/meeting.toml)
    assert "encoder_model.onnx + decoder_model_merged.onnx" in session["stderr"]


def test_stdout_has_one_recognized_line_per_utterance(session):
    assert len(session["lines"]) == len(SENTENCES), session["lines"]
    for sentence, line in zip(SENTENCES, session["lines"]):
        assert wer(sentence, line) < 0.4, (sentence, line)


def test_jsonl_records_are_ordered_and_match_stdout(session):
    records = session["records"]
    duration_s = soundfile.info(session["audio"]).duration
    assert all(
        set(r) == {"utterance", "text", "start_s", "end_s", "emit_s", "language"} for r in records
    )
    keys = [r["utterance"] for r in records]
    assert keys == sorted(keys) and sorted(set(keys)) == list(range(len(set(keys))))
    for before, after in zip(records, records[1:]):
        assert after["start_s"] >= before["end_s"] - 0.02
        assert after["emit_s"] >= before["emit_s"]
    for record in records:
        assert 0 <= record["start_s"] <= record["end_s"] <= duration_s + 0.1
        assert record["emit_s"] >= record["end_s"]
    texts = ["".join(r["text"] for r in group).strip() for group in utterances(records)]
    assert texts == session["lines"]


def test_markdown_has_one_timestamped_paragraph_per_utterance(session):
    markdown = (session["dir"] / f"{session['stem']}.md").read_text()
    header, *paragraphs = markdown.strip().split("\n\n")
    assert header == f"# Transcript {session['stem']}"
    assert len(paragraphs) == len(session["lines"])
    for paragraph, group, line in zip(paragraphs, utterances(session["records"]), session["lines"]):
        start = int(group[0]["start_s"])
        stamp = f"[{start // 3600:02d}:{start % 3600 // 60:02d}:{start % 60:02d}] "
        assert paragraph == stamp + line


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_have_one_cue_per_utterance_at_its_times(session, fmt):
    text = (session["dir"] / f"{session['stem']}.{fmt}").read_text()
    if fmt == "vtt":
        assert text.startswith("WEBVTT\n\n")
        cues = [(m[0:4], m[4:8], m[8]) for m in VTT_CUE.findall(text)]
    else:
        found = SRT_CUE.findall(text)
        assert [int(m[0]) for m in found] == list(range(1, len(found) + 1))
        cues = [(m[1:5], m[5:9], m[9]) for m in found]
    groups = utterances(session["records"])
    assert len(cues) == len(groups) == len(session["lines"]), text
    for (start, end, body), group, line in zip(cues, groups, session["lines"]):
        assert _seconds(start) == pytest.approx(group[0]["start_s"], abs=0.0011)
        assert _seconds(end) == pytest.approx(max(r["end_s"] for r in group), abs=0.0011)
        rows = body.rstrip("\n").split("\n")
        assert all(len(row) <= CUE_LINE_CHARS for row in rows), rows
        assert " ".join(rows) == line
    assert any(len(body.rstrip("\n").split("\n")) > 1 for _, _, body in cues), (
        "the long utterance should wrap onto two lines"
    )


def test_transcript_agrees_with_the_emit_log_word_by_word(session):
    """Each JSONL record is exactly the run of emit-log words committed together."""
    words = list(session["words"])
    for record in session["records"]:
        taken, text = [], ""
        while words and len(text) < len(record["text"]):
            taken.append(words.pop(0))
            text += taken[-1]["text"]
        assert text == record["text"], (record, taken)
        assert record["start_s"] == taken[0]["start_s"]
        assert record["end_s"] == taken[-1]["end_s"]
        assert record["emit_s"] == max(word["emit_s"] for word in taken)
    assert words == [], "the emit log has words the transcript lacks"


def test_a_second_session_never_overwrites_the_first(session, tmp_path):
    """Same directory again (within the same second or later): new files, old ones intact."""
    before = {path.name: path.read_bytes() for path in session["dir"].iterdir()}
    audio = _speech(tmp_path / "short.wav", SENTENCES[2:])
    result = meeting(audio, session["dir"], tmp_path / "words.jsonl")
    assert result.returncode == 0, result.stderr
    after = {path.name: path.read_bytes() for path in session["dir"].iterdir()}
    assert {name: after[name] for name in before} == before
    new = sorted(set(after) - set(before))
    assert len(new) == 4 and len({Path(name).stem for name in new}) == 1, new
    assert wer(SENTENCES[2], result.stdout) < 0.4


def test_chinese_cues_break_between_characters_at_a_shorter_width():
    from streamer.output.subtitles import CUE_LINE_CHARS_SPACELESS, _cue_lines

    text = "保罗斯普尔是位于美国亚利桑那州科奇斯县的一个非建制地区"
    rows = _cue_lines(text).split("\n")
    assert len(rows) == 2 and all(len(row) <= CUE_LINE_CHARS_SPACELESS for row in rows)
    assert "".join(rows) == text
    assert _cue_lines("a short line of English") == "a short line of English"
