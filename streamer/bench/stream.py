"""``streamer bench stream``: latency, accuracy and cost of live transcription on real speech.

Every long-form file of the evaluation manifest is played through the same pipeline that
``streamer live --input FILE`` builds (``FileSource`` at ``--pace``, the preset of ``--mode``, the
same ``Engine``), one file after another. Measured per file and overall:

- commit latency: ``emitted_at_s`` of a committed word minus the end of the word
  (``end_sample / 16000``), both on the pipeline clock (wall clock at ``--pace realtime``,
  the virtual clock at ``--pace fast``). At realtime pace the time the benchmark *received*
  each commit is recorded as well ("seen"): a check on the stamp, which must not be taken
  before the step that made the commit has run (it was, before 92b9d4b), and on the queue
  between the inference thread and the consumer.
- end of speech to final: for each reference segment (``segments`` in the manifest, start_s
  and end_s), the committed words whose midpoint lies in the segment; the emit time of the
  last of them minus the segment's end. A file without segments is one segment that ends at
  its last committed word.
- WER of the streamed text against the reference, and of our own offline transcript
  (``transcribe_file``, same engine and precision) against the reference; the difference in
  points; and the streamed text against the offline transcript.
- CPU seconds per audio second: process CPU time (every thread) over the streaming run only.
- peak RSS: sampled with psutil every ``RSS_EVERY_S`` during the run, and the process's
  ``ru_maxrss`` (everything since the process started: the model load included).

``--set multilingual`` plays the multilingual clips (``multilingual/manifest.jsonl`` beside the
manifest; a multilingual ``--model``), telling the pipeline each clip's language, with one row
per language: WER, or CER for languages without spaces between words (see ``wer``).

``--chapters`` plays the LibriSpeech chapters of the manifest instead, each joined into one
file the way its long-form chapter was made (utterances in order, ``CHAPTER_GAP_S`` of silence
between); chapters that already are a long-form file are left out: a second set, to check that
a change tuned on the long-form files holds elsewhere.

A last row plays ``SILENCE_S`` of digital silence and ``SILENCE_S`` of white noise at
``NOISE_DB`` dBFS at fast pace: no word may be committed from either.

The pieces: ``stream_items`` (what is played), ``stream_run`` (one file through the pipeline),
``stream_metrics`` (the figures of a row) and ``stream_report`` (the table and the JSON).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from streamer.bench.common import (
    code_state,
    default_manifest,
    err,
    model_under_test,
    require_psutil,
)
from streamer.bench.stream_items import StreamItem, silence_files, stream_items
from streamer.bench.stream_metrics import silence_row, summarize
from streamer.bench.stream_report import RunContext, print_report, write_json
from streamer.bench.stream_run import offline_text, run_file
from streamer.config import Config, load_config
from streamer.errors import ConfigError

PER_FILE_ROWS_MAX = 20  # more files than this: a row per set (per language) only; JSON has all


def stream(args: argparse.Namespace) -> int:
    """``streamer bench stream``: play the files of a set (long-form, sessions, chapters or
    all), print the table."""
    set_name = "chapters" if getattr(args, "chapters", False) else getattr(args, "set", None)
    reference = not getattr(args, "no_reference", False)
    model = model_under_test(
        getattr(args, "model", None), getattr(args, "reference_model", None), reference
    )
    manifest = getattr(args, "manifest", None) or default_manifest()
    with tempfile.TemporaryDirectory() as folder:
        limit = getattr(args, "limit", None)
        items = stream_items(manifest, set_name or "longform", Path(folder), limit)
        if not model.multilingual and any(item.language != "en" for item in items):
            raise ConfigError(
                f"{model.directory.name} is English-only: the multilingual set needs a "
                "multilingual --model (e.g. base)"
            )
        return _stream(args, items, model)


def _stream(args: argparse.Namespace, items: list[StreamItem], model) -> int:
    from streamer.engine.transcribe import Engine

    mode = getattr(args, "mode", "captions")
    pace = getattr(args, "pace", "realtime")
    code = code_state()  # before the run: what was loaded, even if files change meanwhile
    config_file = getattr(args, "config", None)
    stream_overrides: dict = {"pace": pace}
    if getattr(args, "virtual_cpu", None) is not None:
        stream_overrides["virtual_cpu_speed"] = args.virtual_cpu
    model_overrides = {"model": {"path": model.path}} if model.path else {}
    config = load_config(mode, config_file, {"stream": stream_overrides, **model_overrides})
    engine = Engine(config.model, log=err)
    engine.warm_up()
    speed = config.stream.virtual_cpu_speed
    if speed > 0:  # what the figures mean: this schedule, not this machine's
        pace = f"fast, step cost modelled at {speed:g}x the reference CPU"
    err(f"{len(items)} files, {sum(i.duration_s for i in items):.0f} s of audio, pace {pace}")

    load_before = os.getloadavg()
    busy_before, cpu_before, wall_before = _busy_cpu_s(), time.process_time(), time.monotonic()
    runs = []
    for item in items:
        runs.append(run_file(item.path, engine, spoken_in(config, item.language), item.id))
        run = runs[-1]
        err(f"  {item.id}: {len(run.words)} words, {run.wall_s:.0f} s wall, {run.cpu_s:.0f} s CPU")
    other_busy = (_busy_cpu_s() - busy_before) - (time.process_time() - cpu_before)
    other_cores = max(0.0, other_busy) / max(time.monotonic() - wall_before, 1e-9)
    load_after = os.getloadavg()

    fast = load_config(mode, config_file, {"stream": {"pace": "fast"}, **model_overrides})
    with tempfile.TemporaryDirectory() as folder:
        quiet = [run_file(path, engine, fast) for path in silence_files(Path(folder))]
    err(f"  silence and noise: {sum(len(r.words) for r in quiet)} words")
    offline = [offline_text(engine, item.path, spoken_in(config, item.language)) for item in items]
    fw = reference_texts(items, model.weights) if model.weights else {}

    def row(picked: list[int], name: str):
        texts = {setting: [fw[setting][i] for i in picked] for setting in fw}
        chosen = [items[i] for i in picked]
        return summarize(
            [runs[i] for i in picked], chosen, [offline[i] for i in picked], name, texts
        )

    rows = [row([index], item.id) for index, item in enumerate(items)]
    rows = rows if len(rows) <= PER_FILE_ROWS_MAX else []
    groups = list(dict.fromkeys(item.group for item in items))
    if len(groups) > 1:  # one row per set (language), then all of them
        for group in groups:
            picked = [i for i, it in enumerate(items) if it.group == group]
            rows.append(row(picked, f"{group} (all{_cer_note(items[picked[0]].language)})"))
    several = len({item.language for item in items}) > 1
    overall = row(list(range(len(items))), "overall (mean of languages)" if several else "overall")
    silence = silence_row(quiet)
    context = RunContext(engine.describe(), code, mode, pace, load_before, load_after, other_cores)
    print_report(context, rows, overall, silence)
    json_path = getattr(args, "json", None)
    if json_path:
        write_json(Path(json_path), context, [*rows, overall, silence], runs, offline)
        err(f"numbers written to {json_path}")
    return 0


def spoken_in(config: Config, language: str) -> Config:
    """``config`` with the decoder told the language of the file it plays."""
    return replace(config, decode=replace(config.decode, language=language))


def _cer_note(language: str) -> str:
    from streamer.bench.wer import metric_name

    return ", CER" if metric_name(language) == "CER" else ""


def reference_texts(items: list[StreamItem], weights: Path | None = None) -> dict[str, list[str]]:
    """faster-whisper's offline transcripts of ``items`` on the same weights (CTranslate2
    directory ``weights``; default tiny.en's), int8, greedy, told each item's language, with its
    VAD filter off (``"fw"``) and on (``"fw vad"``); loaded after the streaming runs, so their
    memory figures are ours alone."""
    from streamer.audiofile import read_audio
    from streamer.bench.offline import FasterWhisperTranscriber

    texts: dict[str, list[str]] = {}
    for vad_filter in (False, True):
        transcriber = FasterWhisperTranscriber("int8", 2, vad_filter, weights)
        texts[transcriber.name.replace(" int8", "")] = [
            transcriber.transcribe(read_audio(item.path), item.language).text for item in items
        ]
        err(f"  {transcriber.name}: {len(items)} files read offline")
    return texts


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy so far, every process counted."""
    times = require_psutil("stream").cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
