"""The engine on real parts: our ONNX files, the real tokenizer, generated speech."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from audio_fixtures import require_espeak, speech_samples, white_noise
from conftest import SEED_DIR

from streamer.config import DecodeOptions, ModelConfig
from streamer.engine.frontend import log_mel_spectrogram, mel_filters, window_features
from streamer.engine.transcribe import Engine, transcribe_audio
from streamer.errors import ModelLoadError

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
SIGNATURE = Path(__file__).parents[1] / "data" / "decoder_model_merged.signature.json"
ONNX_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def _wer(reference: str, hypothesis: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return jiwer.wer(normalize(reference), normalize(hypothesis))


# --- frontend -------------------------------------------------------------------------------


def test_log_mel_matches_reference_on_speech():
    """Our numpy log-mel equals faster-whisper's reference implementation within 1e-4."""
    require_espeak()
    from faster_whisper.feature_extractor import FeatureExtractor

    audio = np.concatenate([speech_samples(SENTENCE), white_noise(1.0, -40.0)]).astype(np.float32)
    reference = FeatureExtractor(feature_size=80)(audio, padding=0)
    ours = log_mel_spectrogram(audio)
    n = min(reference.shape[1], ours.shape[1])
    assert ours.shape[0] == 80 and abs(reference.shape[1] - ours.shape[1]) <= 1
    assert np.abs(reference[:, :n] - ours[:, :n]).max() < 1e-4
    assert np.abs(FeatureExtractor(feature_size=80).mel_filters - mel_filters()).max() < 1e-6


def test_window_features_pads_in_mel_space():
    """Frames after the audio are 0.0, as Whisper's transcribe pads the sliced mel."""
    audio = white_noise(2.0, -30.0).astype(np.float32)
    features = window_features(audio)
    assert features.shape == (1, 80, 3000)
    assert np.all(features[0, :, 200:] == 0.0)
    assert np.abs(features[0, :, :200]).max() > 0.1


# --- model files ----------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "int8"], ids=["fp32", "int8"])
def test_decoder_signature_matches_seed(model_dir, precision):
    """Names, dtypes and dynamic axes of the merged decoder are those of the seed export."""
    seed = json.loads(SIGNATURE.read_text())
    if (SEED_DIR / SIGNATURE.name).exists():  # the committed copy is the seed's
        assert json.loads((SEED_DIR / SIGNATURE.name).read_text()) == seed
    name = (
        "decoder_model_merged.onnx"
        if precision == "fp32"
        else ("decoder_model_merged_quantized.onnx")
    )
    session = ort.InferenceSession(str(model_dir / name), providers=["CPUExecutionProvider"])
    config = json.loads((model_dir / "config.json").read_text())
    for kind, ours in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        by_name = {item.name: item for item in ours}
        assert [item.name for item in ours] == [item["name"] for item in seed[kind]]
        for expected in seed[kind]:
            got = by_name[expected["name"]]
            assert ONNX_DTYPES[got.type] == expected["dtype"]
            shape = list(expected["shape"])
            if expected["name"] == "logits":  # the vocabulary is the model's own (tiny.en)
                shape[-1] = config["vocab_size"]
            assert [str(d) for d in got.shape] == [str(d) for d in shape], expected["name"]


def test_model_metadata_records_dims(model_dir):
    import onnx

    model = onnx.load(str(model_dir / "encoder_model.onnx"), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["whisper.n_audio_layer"] == "4" and props["whisper.n_vocab"] == "51864"
    assert props["whisper.sot_id"] == "50257"


# --- decoding -------------------------------------------------------------------------------


def test_cached_decoding_equals_uncached(engine_fp32):
    """Greedy decoding from the KV cache gives the tokens and logits of full recomputation."""
    require_espeak()
    features = engine_fp32.encode(speech_samples(SENTENCE))
    decoder = engine_fp32.decoder
    tokens = [engine_fp32.tokenizer.special.sot, engine_fp32.tokenizer.special.no_timestamps]
    first = decoder.prefill(np.array([tokens]), features)
    cache, logits = first.cache, first.logits[0, -1]
    cached_tokens, uncached_tokens = list(tokens), list(tokens)
    for _ in range(12):
        cached_tokens.append(int(logits.argmax()))
        full = decoder.prefill(np.array([uncached_tokens]), features).logits[0, -1]
        uncached_tokens.append(int(full.argmax()))
        assert np.allclose(logits, full, atol=2e-3), "cached logits drift from recomputation"
        out = decoder.step(np.array([[cached_tokens[-1]]]), cache)
        cache, logits = out.cache, out.logits[0, -1]
    assert cached_tokens == uncached_tokens
    assert cache.offset == len(cached_tokens)


@pytest.mark.parametrize("kind", ["int8", "fp32"])
def test_logits_from_a_position_are_the_rows_of_the_full_prefill(engine, engine_fp32, kind):
    """Our build's decoder skips the logits of positions before ``logits_from`` (the prompt):
    the rows it gives are the full prefill's to the bit, int8 too (its activations are
    quantized over every position before the rows are taken)."""
    chosen = engine if kind == "int8" else engine_fp32
    decoder = chosen.decoder
    assert decoder.selects_logit_rows
    hidden = np.random.default_rng(0).standard_normal((1, 300, 384)).astype(np.float32)
    tokens = np.random.default_rng(1).integers(0, 50000, (1, 40))
    full = decoder.prefill(tokens, hidden)
    for start in (1, 25, 39):
        part = decoder.prefill(tokens, hidden, logits_from=start)
        assert part.logits_from == start and full.logits_from == 0
        assert np.array_equal(part.logits, full.logits[:, start:])
        assert np.array_equal(part.cache.self_kv[0][0], full.cache.self_kv[0][0])


# More sentences than one: int8 reads a synthetic voice less surely than fp32, and which
# sentence it trips on depends on the CPU's int8 kernels (on AVX2-only CPUs "the quick brown
# fox jumps" became "the quick round-fuck stump"; int8 accuracy on real speech is measured
# against fp32 in test_oracle.py).
SENTENCES = [
    SENTENCE,
    "Please call me tomorrow morning at nine.",
    "Open the window and let the fresh air in.",
    "The weather today is cold and windy.",
]


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_espeak_sentences_are_recognized(engine, engine_fp32, precision):
    require_espeak()
    chosen = engine if precision == "int8" else engine_fp32
    readings = []
    for sentence in SENTENCES:
        transcript = transcribe_audio(chosen, speech_samples(sentence))
        readings.append(transcript.text)
        segment = transcript.segments[0]
        assert 0.0 <= segment.start_s < segment.end_s <= transcript.duration_s + 0.5
    assert _wer(" ".join(SENTENCES), " ".join(readings)) < 0.2, readings


def test_beam_search_recognizes_the_sentence(engine):
    require_espeak()
    transcript = transcribe_audio(
        engine, speech_samples(SENTENCE), replace(DecodeOptions(), beam_size=4)
    )
    assert _wer(SENTENCE, transcript.text) < 0.3, transcript.text


@pytest.mark.parametrize("kind", ["silence", "faint-noise"])
def test_no_text_without_speech(engine, kind):
    audio = np.zeros(16000 * 8, np.float32) if kind == "silence" else white_noise(8.0, -60.0)
    transcript = transcribe_audio(engine, audio.astype(np.float32))
    assert transcript.text == "", transcript.text


def test_prefix_resumes_decoding(engine_fp32):
    """A teacher-forced prefix is kept verbatim and decoding continues after it, exactly as
    without it in fp32 (int8 quantizes activations per call: on an AVX-512 VNNI CPU the
    prefilled call flipped a close arg-max at the sixth token)."""
    require_espeak()
    features = engine_fp32.encode(speech_samples(SENTENCE))
    task = engine_fp32.task(replace(DecodeOptions(), without_timestamps=True))
    full = task.run(features)
    prefix = list(full.tokens[:4])
    resumed = task.run(features, prefix=prefix)
    assert resumed.tokens[:4] == tuple(prefix)
    assert resumed.tokens == full.tokens
    assert resumed.prefix_length == 4


def test_token_logprobs_are_the_same_with_or_without_a_draft(engine_fp32):
    """Each token's log-probability is reported, sums to the hypothesis score, and does not
    depend on how many tokens came from the draft (the draft path is exact in fp32; int8
    quantizes activations per call, so a long prefill can flip a close arg-max)."""
    require_espeak()
    features = engine_fp32.encode(speech_samples(SENTENCE))
    task = engine_fp32.task(DecodeOptions())
    plain = task.run(features)
    drafted = task.run(features, draft=list(plain.tokens[:-3]))
    assert drafted.draft_accepted > 0
    assert drafted.tokens == plain.tokens
    assert len(plain.token_logprobs) == len(plain.tokens)
    assert np.allclose(drafted.token_logprobs, plain.token_logprobs, atol=1e-3)
    assert all(logprob <= 0 for logprob in plain.token_logprobs)
    # the scores also count end-of-text, the last one the search picked
    assert sum(plain.token_logprobs) >= plain.sum_logprob - 1e-6


def test_a_draft_with_an_edit_resyncs_and_gives_the_greedy_result(engine_fp32):
    """A draft that differs from the reading in one word (as consecutive streaming readings
    do) is left at the edit and picked up again after it: the result is still exactly the
    greedy one, in fewer decoder calls than decoding on alone from the edit."""
    require_espeak()
    features = engine_fp32.encode(speech_samples(SENTENCE))
    task = engine_fp32.task(DecodeOptions())
    plain = task.run(features)
    text_positions = [
        i for i, t in enumerate(plain.tokens) if t < engine_fp32.tokenizer.special.eot
    ]
    edit = text_positions[len(text_positions) // 3]
    wrong = engine_fp32.tokenizer.encode(" banana")[0]
    assert wrong != plain.tokens[edit]
    draft = list(plain.tokens)
    draft[edit] = wrong
    resynced = task.run(features, draft=draft)
    assert resynced.tokens == plain.tokens
    assert resynced.draft_accepted == edit
    assert np.allclose(resynced.token_logprobs, plain.token_logprobs, atol=1e-3)
    cut = task.run(features, draft=draft[:edit])  # the same draft without its tail
    assert cut.tokens == plain.tokens
    assert resynced.decoder_calls < cut.decoder_calls - 2, (resynced, cut)


def test_words_carry_the_mean_probability_of_their_tokens(engine):
    """A clear sentence is read with confidence; the same words spoken over loud noise
    are read with less."""
    require_espeak()
    from streamer.audio import N_SAMPLES_PER_TOKEN
    from streamer.engine.alignment import word_timestamps

    def words_of(audio):
        result = engine.task(DecodeOptions()).run(engine.encode(audio), want_alignment=True)
        n_frames = len(audio) // N_SAMPLES_PER_TOKEN
        return word_timestamps(
            engine.tokenizer,
            result.tokens,
            result.cross_attentions,
            n_frames,
            0,
            result.token_logprobs,
        )

    # not SENTENCE: how surely int8 reads "brown fox jumps" in this voice depends on the CPU
    clear = speech_samples(SENTENCES[1])
    words = words_of(clear)
    assert all(0.0 < w.probability <= 1.0 for w in words)
    assert np.mean([w.probability for w in words]) > 0.7, [(w.text, w.probability) for w in words]
    noisy = clear + white_noise(len(clear) / 16000, -12.0)[: len(clear)]
    noisy_words = words_of(noisy.astype(np.float32))
    assert np.mean([w.probability for w in noisy_words]) < np.mean([w.probability for w in words])


def test_long_audio_seeks_across_windows(engine_fp32):
    """50 s of audio (speech, silence, speech) is decoded over several 30 s windows (fp32:
    the seeking is under test, not how int8 reads this voice). The gaps are shorter than
    most of a window: after 25 s of silence tiny.en may read nothing in the speech that ends
    the window, and the whole window is skipped, as in openai/whisper (a VAD finds it)."""
    require_espeak()
    speech = speech_samples(SENTENCE)
    gap = np.zeros(16000 * 18, np.float32)
    audio = np.concatenate([speech, gap, speech, gap, speech])
    transcript = transcribe_audio(engine_fp32, audio)
    starts = [s.start_s for s in transcript.segments]
    assert starts == sorted(starts)
    assert transcript.text.lower().count("river bank") == 3, transcript.text
    assert transcript.segments[-1].end_s <= len(audio) / 16000 + 0.5


def test_io_binding_path_gives_the_same_tokens(engine):
    """The IO-binding path (used on CUDA, where the KV cache stays on the GPU) run on the CPU:
    greedy, draft-resumed and beam decoding equal the plain path given the same draft (int8
    quantizes activations per call, so a draft can flip a close arg-max in either path)."""
    require_espeak()
    from streamer.engine.decoding import DecodeTask
    from streamer.engine.session import DecoderSession

    bound = DecoderSession(
        engine.info, ModelConfig(precision="int8", device="cpu"), io_binding=True
    )
    features = engine.encode(speech_samples(SENTENCE))
    for options in (DecodeOptions(), replace(DecodeOptions(), beam_size=3)):
        plain = DecodeTask(engine.decoder, engine.tokenizer, options).run(features)
        task = DecodeTask(bound, engine.tokenizer, options)
        assert task.run(features).tokens == plain.tokens
        draft = list(plain.tokens[:6])
        unbound = DecodeTask(engine.decoder, engine.tokenizer, options)
        assert task.run(features, draft=draft).tokens == unbound.run(features, draft=draft).tokens


def test_directory_without_manifest_loads_like_a_download(model_dir, tmp_path):
    """A Xenova/onnx-community directory has the same file names but no manifest.json: it
    loads (presence checked only), reports the files it picked, and transcribes."""
    require_espeak()
    download = tmp_path / "whisper-tiny.en-download"
    download.mkdir()
    for path in model_dir.iterdir():
        if path.name != "manifest.json":
            (download / path.name).symlink_to(path)
    engine = Engine(
        ModelConfig(path=str(download), precision="fp32", device="cpu"), log=lambda _: None
    )
    assert "encoder_model.onnx + decoder_model_merged.onnx" in engine.describe()
    transcript = transcribe_audio(engine, speech_samples(SENTENCE))
    assert _wer(SENTENCE, transcript.text) < 0.3, transcript.text


def test_auto_precision_is_int8_on_the_cpu_and_fp32_on_cuda(model_dir, monkeypatch, tmp_path):
    """CUDA has no kernels for the int8 files' dynamic quantization (they ran at half the
    speed of fp32 on an H200), so auto picks fp32 there; int8 on the CPU, where it is
    about twice as fast; whichever files a directory has; an explicit choice stands."""
    from streamer.engine import runtime
    from streamer.engine.model_info import DECODER_FILES, ENCODER_FILES

    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    assert runtime.choose_precision(model_dir, "auto", "auto") == "int8"
    assert runtime.choose_precision(model_dir, "fp32", "cpu") == "fp32"
    for name in (ENCODER_FILES["fp32"], DECODER_FILES["fp32"]):
        (tmp_path / name).touch()
    assert runtime.choose_precision(tmp_path, "auto", "cpu") == "fp32"  # a download without int8
    (tmp_path / "manifest.json").touch()  # our build: a missing file is damage, reported
    assert runtime.choose_precision(tmp_path, "auto", "cpu") == "int8"
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert runtime.choose_precision(model_dir, "auto", "auto") == "fp32"
    assert runtime.choose_precision(model_dir, "auto", "cpu") == "int8"
    assert runtime.choose_precision(model_dir, "int8", "cuda") == "int8"
    assert runtime.choose_providers("cuda")[0] == ("CUDAExecutionProvider", runtime.CUDA_OPTIONS)


def test_cuda_asked_for_where_it_does_not_load_says_which_flag(model_dir):
    from streamer.engine.runtime import cuda_available

    if cuda_available():
        pytest.skip("CUDA loads here")
    with pytest.raises(ModelLoadError) as error:
        Engine(ModelConfig(path=str(model_dir), device="cuda"), log=lambda _: None)
    message = str(error.value)
    assert "--model-device cpu" in message and "models build" not in message, message


def test_cuda_probe_model_is_a_one_node_identity():
    """The probe's model is written out as bytes (importing onnx costs 18 MB of RSS): it is
    the model onnx.helper makes, and it runs."""
    from onnx import TensorProto, helper

    from streamer.engine.runtime import PROBE_MODEL

    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])  # noqa: E731
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "probe", [value("x")], [value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert PROBE_MODEL == model.SerializeToString()
    session = ort.InferenceSession(PROBE_MODEL, providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.array([2.5], np.float32)})[0].tolist() == [2.5]


@pytest.mark.gpu
def test_on_cuda_the_engine_reads_as_on_the_cpu(engine_fp32, model_dir):
    """Where CUDA loads: the default precision is fp32 there, the decoder keeps its cache on
    the GPU (IO binding), and it reads what the CPU reads (no TF32: same logits to 1e-3)."""
    from streamer.engine.runtime import cuda_available

    if not cuda_available():
        pytest.skip("needs CUDAExecutionProvider (onnxruntime-gpu with CUDA 12/13 and cuDNN 9)")
    require_espeak()
    cuda = Engine(ModelConfig(path=str(model_dir), device="cuda"), log=lambda _: None)
    assert (cuda.provider, cuda.info.precision, cuda.decoder.io_binding) == ("CUDA", "fp32", True)
    for sentence in SENTENCES[1:]:
        audio = speech_samples(sentence)
        on_gpu = cuda.task(DecodeOptions()).run(cuda.encode(audio))
        on_cpu = engine_fp32.task(DecodeOptions()).run(engine_fp32.encode(audio))
        assert on_gpu.tokens == on_cpu.tokens, (on_gpu.text, on_cpu.text)
        assert np.allclose(on_gpu.token_logprobs, on_cpu.token_logprobs, atol=1e-3)
