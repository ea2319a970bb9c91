"""``streamer bench``: dispatch, the evaluation manifest, WER, the report table, and one real
``bench offline`` run through the command line on a small slice of ``../shared/eval``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamer import bench
from streamer.bench import offline, offline_report
from streamer.bench.wer import normalize, word_errors
from streamer.errors import ConfigError, StreamerError

REPO = Path(__file__).resolve().parents[2]
EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"
ENGINES = ("ours fp32", "ours int8", "ours int8 no-vad", "fw int8", "fw int8 vad", "fw fp32")
GROUPS = ("librispeech test-other", "librispeech test-clean", "longform")

needs_eval = pytest.mark.skipif(
    not (EVAL_DIR / "manifest.jsonl").exists(),
    reason=f"evaluation audio not found at {EVAL_DIR} (../shared/eval next to the repo)",
)


# --- dispatch ----------------------------------------------------------------------------------


def test_missing_benchmark_module_is_a_clear_error(monkeypatch):
    """``bench stream``/``bench soak`` live in modules written separately; until one exists the
    command says so instead of raising ModuleNotFoundError."""
    monkeypatch.setitem(bench.COMMANDS, "stream", "streamer.bench.not_written_yet")
    with pytest.raises(StreamerError, match="bench stream is not available yet"):
        bench.main(argparse.Namespace(bench_command="stream"))


def test_unknown_benchmark_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: offline, stream, soak"):
        bench.main(argparse.Namespace(bench_command="nightly"))


# --- WER ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Mr. Hale said, "Hello!"', "mister hale said hello"),
        ("THE COLOUR OF IT", "the color of it"),
        ("fourteen fifty-five", "1455"),
    ],
    ids=["punctuation-and-title", "british-spelling", "spelled-number"],
)
def test_normalize_is_whispers_english_normalizer(text, expected):
    assert normalize(text) == expected


def test_wer_is_corpus_level_not_a_mean_of_utterances():
    """1 error in 10 words plus 1 error in 2 words is 2/12, not (0.1 + 0.5) / 2."""
    references = ["the cat sat on a mat by the door today", "good night"]
    hypotheses = ["the cat sat on a hat by the door today", "good"]
    errors = word_errors(references, hypotheses)
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 1, 0)
    assert errors.wer == pytest.approx(2 / 12)


def test_wer_counts_words_against_an_empty_reference_as_insertions():
    errors = word_errors(["", "red fox"], ["hello there", "red fox"])
    assert (errors.insertions, errors.reference_words) == (2, 2)
    assert errors.wer == 1.0


# --- manifest and table -------------------------------------------------------------------------


def _write_manifest(path: Path) -> Path:
    other = {"set": "librispeech", "subset": "test-other", "text": "X"}
    records = [
        {"id": "lf", "path": "lf.wav", "text": "X", "set": "longform"},
        *({"id": f"o{i}", "path": f"o{i}.wav", **other} for i in range(3)),
        {"id": "c0", "path": "c0.wav", "text": "X", "set": "librispeech", "subset": "test-clean"},
    ]
    manifest = path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(record) + "\n" for record in records))
    return manifest


def test_manifest_groups_in_table_order_and_limits_each_group(tmp_path):
    items = offline.read_eval_manifest(_write_manifest(tmp_path), ["librispeech", "longform"], 2)
    assert [item.id for item in items] == ["o0", "o1", "c0", "lf"]
    assert [item.group for item in items] == [GROUPS[0], GROUPS[0], GROUPS[1], GROUPS[2]]
    assert items[0].path == tmp_path / "o0.wav"


def test_manifest_rejects_an_unknown_set(tmp_path):
    with pytest.raises(ConfigError, match="valid: librispeech,longform"):
        offline.read_eval_manifest(_write_manifest(tmp_path), ["tedlium"])


def test_speed_ratio_and_wer_delta_compare_our_int8_with_faster_whisper_int8():
    scores = {
        "ours int8": offline_report.Score(0.12, 12, 100, compute_s=1.0, audio_s=20.0, cpu_s=2.0),
        "fw int8": offline_report.Score(0.10, 10, 100, compute_s=1.5, audio_s=20.0, cpu_s=3.0),
    }
    row = offline_report.SetRow("overall", 2, 20.0, scores)
    assert row.speed_ratio() == pytest.approx(1.5)
    assert row.wer_delta() == pytest.approx(2.0)


# --- the real command ---------------------------------------------------------------------------


def _table(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and {set: cells} of the plain-text (Markdown) table."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in stdout.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]
    return rows[0], {cells[0]: cells for cells in rows[1:]}


@pytest.mark.eval
@needs_eval
def test_bench_offline_prints_every_engine_and_set(tmp_path):
    """Two files per set through ``python -m streamer bench offline``: every column is there and
    every number is sensible. Also checks ``--json`` once the CLI has the flag. (The sessions,
    a default set, are left out: two of them are 13 minutes of audio per engine.)"""
    command = [
        sys.executable,
        "-m",
        "streamer",
        "bench",
        "offline",
        "--manifest",
        str(EVAL_DIR / "manifest.jsonl"),
        "--limit",
        "2",
        "--sets",
        "librispeech,longform",
    ]
    help_text = subprocess.run(
        [*command[:5], "--help"], capture_output=True, text=True, cwd=REPO
    ).stdout
    json_path = tmp_path / "bench.json"
    if "--json" in help_text:
        command += ["--json", str(json_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)

    assert result.stdout.startswith("machine: ")
    assert "onnxruntime" in result.stdout and "ctranslate2" in result.stdout
    header, rows = _table(result.stdout)
    expected = ["set", "files", "audio s"]
    expected += [f"WER% {engine}" for engine in ENGINES] + [f"RTF {engine}" for engine in ENGINES]
    expected += ["speed ours int8 vs fw int8", "WER delta ours int8 - fw int8"]
    missing = [column for column in expected if column not in header]
    assert not missing, f"columns missing: {missing}; header: {header}"  # CUDA ones may be extra
    assert list(rows) == [*GROUPS, "overall"]
    assert [rows[name][1] for name in [*GROUPS, "overall"]] == ["2", "2", "2", "6"]
    for name, cells in rows.items():
        values = dict(zip(header, cells))
        for engine in ENGINES:
            assert 0.0 <= float(values[f"WER% {engine}"]) / 100 <= 1.0, (name, engine, values)
            assert float(values[f"RTF {engine}"]) > 0, (name, engine, values)
        assert float(values["speed ours int8 vs fw int8"].rstrip("x")) > 0
    if json_path.exists():
        report = json.loads(json_path.read_text())
        overall = report["sets"][-1]
        assert overall["name"] == "overall" and overall["files"] == 6
        assert set(ENGINES) <= set(overall["engines"])
