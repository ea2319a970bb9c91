"""StreamingTranscriber without threads: window management on the real model and real speech."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from audio_fixtures import require_espeak, speech_samples
from hypothesis import given
from hypothesis import strategies as st

from streamer.audio import SAMPLE_RATE, seconds_to_samples
from streamer.config import load_config
from streamer.live.reading import drop_crammed_tail, drop_squeezed_repeats, loop_cut
from streamer.live.streaming import UNCOVERED_S, UNREAD_AT_END_S, StreamingTranscriber
from streamer.types import Hypothesis, Word


def _transcriber(engine, **stream) -> StreamingTranscriber:
    config = load_config("captions", overrides={"stream": stream} if stream else None)
    return StreamingTranscriber(engine, config.decode, config.stream)


def _commit(transcriber: StreamingTranscriber, words: list[Word], window_end: int) -> None:
    reading = Hypothesis(tuple(words), (), transcriber.window_start, window_end, -0.2, 0.01, 1.2)
    for _ in range(transcriber.policy.n):
        transcriber.policy.update(reading)


def test_a_reading_that_stops_early_moves_the_window_to_the_committed_end(engine):
    transcriber = _transcriber(engine)
    words = [Word(" one", 0, SAMPLE_RATE // 2), Word(" two", SAMPLE_RATE // 2, SAMPLE_RATE)]
    window_end = int((1.0 + UNCOVERED_S + 0.5) * SAMPLE_RATE)
    _commit(transcriber, words, window_end)
    transcriber._skip_uncovered(words, window_end)
    # no committed word starts a second before the end: the first one after the window's start
    assert transcriber.window_start == words[1].start_sample


@pytest.mark.parametrize(
    ("word_s", "n_words", "expected_s"),
    [
        (0.4, 4, 1.9),  # the latest committed word that starts a second before the end (3.1 s)
        (0.25, 6, 2.0),  # ... or more
        (0.8, 2, 2.3),  # none starts that early after the window's start: the first that does
        (1.6, 1, 2.8),  # none starts after the window's start: 0.3 s before the end
    ],
)
def test_a_moved_window_starts_at_a_committed_word_about_a_second_back(
    engine, word_s, n_words, expected_s
):
    """From inside a word Whisper skips the first new word ("that it might | appear I had
    none" read "I had done"); from a word boundary it reads the committed words again."""
    transcriber = _transcriber(engine)
    transcriber.window_start = seconds_to_samples(1.5)
    words = [
        Word(
            f" w{i}",
            seconds_to_samples(1.5 + i * word_s),
            seconds_to_samples(1.5 + (i + 1) * word_s),
        )
        for i in range(n_words)
    ]
    window_end = words[-1].end_sample + seconds_to_samples(UNCOVERED_S + 0.5)
    _commit(transcriber, words, window_end)
    transcriber._skip_uncovered(words, window_end)
    assert transcriber.window_start == seconds_to_samples(expected_s)


def test_a_long_window_is_trimmed_a_word_or_so_before_a_committed_sentence_end(engine):
    """Past ``trim_after_s`` the window is cut near the end of a committed sentence: at the
    committed word that starts about a second before that end, not at the end itself (a
    window starting there with a second of audio read "on the whole" as "Im a hole")."""
    transcriber = _transcriber(engine)
    words = _timed(
        [(" easier", 14.5, 14.8), (" to", 14.8, 15.1), (" read.", 15.1, 15.6), (" on", 15.7, 15.9)]
    )
    _commit(transcriber, words, seconds_to_samples(16.0))
    transcriber.maybe_trim(seconds_to_samples(14.0))  # not long yet: the window stays
    assert transcriber.window_start == 0
    transcriber.maybe_trim(seconds_to_samples(16.0))
    assert transcriber.window_start == seconds_to_samples(14.5)  # "easier", 1.1 s before 15.6


def test_a_reading_that_covers_its_window_keeps_the_window(engine):
    transcriber = _transcriber(engine)
    words = [Word(" one", 0, SAMPLE_RATE // 2), Word(" two", SAMPLE_RATE // 2, SAMPLE_RATE)]
    window_end = int((1.0 + UNCOVERED_S - 0.2) * SAMPLE_RATE)
    _commit(transcriber, words, window_end)
    transcriber._skip_uncovered(words, window_end)
    assert transcriber.window_start == 0


def test_streaming_steps_over_real_speech_commit_each_word_once(engine):
    """Steps of 0.45 s over two sentences: the words come out in order, none twice."""
    require_espeak()
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    reference = "please call me tomorrow morning at nine we are going to the market to buy bread"
    audio = np.concatenate(
        [
            speech_samples("Please call me tomorrow morning at nine."),
            pause,
            speech_samples("We are going to the market to buy bread."),
            pause,
        ]
    )
    transcriber = _transcriber(engine)
    committed = []
    step = int(0.45 * SAMPLE_RATE)
    for end in range(step * 2, len(audio) + step, step):
        window = audio[transcriber.window_start : min(end, len(audio))]
        committed += transcriber.step(window).committed
    committed += transcriber.endpoint(len(audio), len(audio) / SAMPLE_RATE).committed
    words = [w.text.strip(" .,").lower() for w in committed]
    assert _word_errors(reference.split(), words) <= 2, words
    starts = [w.start_sample for w in committed]
    assert starts == sorted(starts)


def _word_errors(reference: list[str], hypothesis: list[str]) -> int:
    import jiwer

    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions


def test_a_reading_taken_and_dropped_changes_nothing(engine):
    """A reading taken ahead of a pause that does not come is dropped: the steps after it
    read, commit and draft exactly as if it had never been taken. One taken on a window
    that has moved since cannot be judged."""
    require_espeak()
    audio = speech_samples("Please call me tomorrow morning at nine, we are going out.")
    ends = [int(s * SAMPLE_RATE) for s in (1.2, 1.65, 2.1, 2.55)]
    assert len(audio) > ends[-1]
    plain, dropping = _transcriber(engine), _transcriber(engine)

    def state(t: StreamingTranscriber) -> tuple:
        policy = t.policy
        return (
            t.window_start,
            list(t._draft),
            list(t._context),
            t._read_end,
            policy.tentative,
            policy.n_committed,
            policy.committed_end_sample,
        )

    for end in ends:
        before = state(dropping)
        dropped = dropping.read(audio[: end - SAMPLE_RATE // 10])
        assert state(dropping) == before
        assert dropped.words and dropped.window_end == end - SAMPLE_RATE // 10
        expected, got = plain.step(audio[:end]), dropping.step(audio[:end])
        assert got.hypothesis.tokens == expected.hypothesis.tokens
        assert got.work == expected.work  # the same draft: the same prefill and calls
        assert [w.text for w in got.committed] == [w.text for w in expected.committed]
        assert got.tentative.text == expected.tentative.text
    assert plain.policy.n_committed > 0  # the steps did commit something
    stale = dropping.read(audio)
    dropping.start_utterance(SAMPLE_RATE)  # new speech: the window starts after the last
    with pytest.raises(ValueError, match="moved"):
        dropping.apply(stale)


def test_a_late_max_length_cut_commits_up_to_the_cut_and_keeps_the_window(engine):
    """The VAD cuts a long span at 1.6 s when the window already reaches 2.5 s: "three"
    (1.5-2.1 s) spans the cut, so it is not committed half-heard, and the window keeps its
    audio, so that the next reading has it whole; the span going on from the cut does not
    move the window, a real onset after silence does. (Without ``settled_ms``: with it the
    reading alone would commit " two", heard whole a second before the window's end.)"""
    transcriber = _transcriber(engine, settled_ms=0)
    one_two = [
        Word(" one", 0, seconds_to_samples(0.5)),
        Word(" two", seconds_to_samples(0.5), seconds_to_samples(1.4)),
    ]
    _commit(transcriber, one_two[:1], seconds_to_samples(1.0))
    newest = (*one_two, Word(" thr-", seconds_to_samples(1.5), seconds_to_samples(2.1)))
    transcriber.policy.update(Hypothesis(newest, (), 0, seconds_to_samples(2.5), -0.2, 0.01, 1.2))
    result = transcriber.endpoint(seconds_to_samples(1.6), now_s=3.0, reason="max_length")
    assert [w.text for w in result.committed] == [" two"]
    transcriber.start_utterance(seconds_to_samples(1.6))
    assert transcriber.window_start == 0
    # the next readings restate the committed words: only the new one commits
    again = (*one_two, Word(" three", seconds_to_samples(1.5), seconds_to_samples(2.1)))
    for _ in range(transcriber.policy.n):
        update = transcriber.policy.update(
            Hypothesis(again, (), 0, seconds_to_samples(3.0), -0.2, 0.0, 1.2)
        )
    assert [w.text for w in update.newly_committed] == [" three"]
    transcriber.endpoint(seconds_to_samples(4.0), now_s=4.5)
    transcriber.start_utterance(seconds_to_samples(5.0))
    assert transcriber.window_start == seconds_to_samples(5.0)


def test_an_endpoint_after_a_reading_that_stopped_early_reads_the_rest(engine):
    """Whisper ended its reading at 1.0 s of a span that ends at 2.5 s: the words it read
    become final and the window moves to them, so the next step reads only the rest."""
    transcriber = _transcriber(engine)
    words = [
        Word(" one", 0, seconds_to_samples(0.5)),
        Word(" two", seconds_to_samples(0.5), seconds_to_samples(1.0)),
    ]
    transcriber._read_end = seconds_to_samples(1.0)
    transcriber.policy.update(
        Hypothesis(tuple(words), (), 0, seconds_to_samples(2.5), -0.2, 0.01, 1.2)
    )
    assert transcriber.unread_tail(seconds_to_samples(2.5))
    result = transcriber.read_rest(now_s=2.6)
    assert [w.text for w in result.committed] == [" one", " two"]
    assert transcriber.window_start == words[1].start_sample
    assert not transcriber.unread_tail(seconds_to_samples(1.0 + UNREAD_AT_END_S - 0.1))


def test_a_real_span_whose_reading_stopped_early_is_read_to_its_end(engine_fp32):
    """Over real speech: a tail the first reading missed is committed after read_rest.
    In fp32: int8 reads this one sentence differently on different CPUs ("back run")."""
    require_espeak()
    audio = speech_samples(
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
    )
    transcriber = _transcriber(engine_fp32)
    first = transcriber.step(audio[: len(audio) // 2])
    transcriber._read_end = max(w.end_sample for w in first.hypothesis.words)
    words = [*first.committed]
    words += transcriber.read_rest(now_s=0.0).committed
    rest = audio[transcriber.window_start :]
    words += transcriber.step(rest).committed
    words += transcriber.endpoint(len(audio), now_s=0.0).committed
    text = "".join(w.text for w in words).lower()
    assert text.count("smooth planks") == 1 and text.rstrip(".").endswith("dark blue background"), (
        text
    )


def _timed(spec: list[tuple[str, float, float]]) -> list[Word]:
    return [Word(text, seconds_to_samples(a), seconds_to_samples(b)) for text, a, b in spec]


def test_a_phrase_read_twice_with_one_copy_squeezed_is_read_once():
    """The reading that committed "Has never been surpassed." twice (LJSpeech, 51-53 s)."""
    words = _timed(
        [
            (" 1455.", 49.62, 51.12),
            (" Has", 51.12, 51.62),
            (" never", 51.62, 51.92),
            (" been", 51.92, 52.26),
            (" surpassed.", 52.26, 52.64),
            (" Has", 52.64, 52.66),
            (" never", 52.66, 52.66),
            (" been", 52.66, 52.66),
            (" surpassed.", 52.66, 53.34),
            (" Printing", 53.58, 53.96),
        ]
    )
    repaired = drop_squeezed_repeats(words)
    assert [w.text for w in repaired] == [
        " 1455.",
        " Has",
        " never",
        " been",
        " surpassed.",
        " Printing",
    ]
    assert repaired[4].start_sample == words[4].start_sample
    assert repaired[4].end_sample == words[8].end_sample  # the phrase's audio, whole


def test_a_phrase_spoken_twice_stays_twice():
    words = _timed(
        [
            (" on", 1.0, 1.2),
            (" the", 1.2, 1.35),
            (" beaches,", 1.35, 1.9),
            (" on", 2.1, 2.3),
            (" the", 2.3, 2.45),
            (" beaches.", 2.45, 3.0),
        ]
    )
    assert drop_squeezed_repeats(words) == words


def test_a_whole_sentence_read_again_squeezed_is_read_once():
    """The reading that made "The Middle Ages ... natural there for..." final twice at a
    pause (LJSpeech, 107-113 s): 13 words, the second copy 20 ms a word."""
    sentence = "The Middle Ages brought calligraphy to perfection and it was natural there for..."
    texts = [" " + t for t in sentence.split()]
    spoken = [(t, 107.36 + 0.4 * k, 107.36 + 0.4 * (k + 1)) for k, t in enumerate(texts)]
    squeezed = [(t, 112.52, 112.54) for t in texts]
    repaired = drop_squeezed_repeats(_timed(spoken + squeezed))
    assert [w.text for w in repaired] == texts
    assert repaired[-1].end_sample == seconds_to_samples(112.54)


def test_a_reading_that_ends_in_words_without_audio_loses_them():
    """A reading of LJSpeech at 34.5 s ended "... considered as the invention of the 15th
    century may be considered as the", the last ten words 20 ms each at the window's end."""
    heard = [(" considered", 33.12, 33.60), (" as", 33.60, 34.26), (" the", 34.26, 34.50)]
    crammed = [(" " + t, 34.52, 34.54) for t in "invention of the 15th century may".split()]
    assert drop_crammed_tail(_timed(heard + crammed)) == _timed(heard)


@given(st.lists(st.integers(0, 400), min_size=0, max_size=12), st.integers(0, 2))
def test_a_reading_keeps_its_words_unless_it_ends_in_three_crammed_ones(durations_ms, n_short):
    """Words of real length are never dropped; fewer than three short ones at the end stay
    (a word cut at the window's end is short); three or more go."""
    spec, start = [], 1.0
    for k, ms in enumerate([max(ms, 60) for ms in durations_ms] + [20] * n_short):
        spec.append((f" w{k}", start, start + ms / 1000))
        start += ms / 1000
    words = _timed(spec)
    assert drop_crammed_tail(words) == words
    three_more = _timed(spec + [(" x", start, start + 0.02)] * (3 - n_short))
    assert drop_crammed_tail(three_more) == words[: len(words) - n_short]


# --- a reading that loops -----------------------------------------------------------------------


def test_a_loop_is_cut_after_its_first_copy():
    # "make [a deformed person appear lovely . Like] [a deformed ...": the earliest loop start
    assert loop_cut([1, 2, 3, 4, 5, 2, 3, 4, 5, 2, 3]) == 5
    # the copy's last sentence end: "Like" (6) began the next copy
    assert loop_cut([1, 2, 3, 4, 6, 2, 3, 4, 6, 2, 3], sentence_ends={3, 7}) == 4
    assert loop_cut([7, 7, 7, 7, 7]) == 1
    assert loop_cut([1, 2, 3, 4]) is None
    assert loop_cut([]) is None


@given(
    st.lists(st.integers(0, 5), max_size=12),
    st.lists(st.integers(0, 5), min_size=1, max_size=6),
    st.integers(2, 6),
    st.integers(0, 5),
)
def test_a_loop_cut_keeps_at_most_one_copy_after_what_came_before(prefix, phrase, copies, part):
    tokens = prefix + phrase * copies + phrase[: part % len(phrase)]
    cut = loop_cut(tokens)
    assert cut is not None and 1 <= cut <= len(prefix) + len(phrase)
    # what is kept no longer holds two copies of the phrase at its end
    kept = tokens[:cut]
    assert kept[-2 * len(phrase) :] != phrase * 2 or len(kept) < 2 * len(phrase)


def test_a_reading_that_loops_keeps_the_words_before_the_loop(engine):
    """A real reading with a loop appended (as tiny.en loops on short windows after a
    prompt): the guards reject the loop, the salvage gives back the reading itself."""
    require_espeak()
    transcriber = _transcriber(engine)
    audio = speech_samples("Her humour would make a deformed person appear lovely.")
    result, _ = transcriber._decode(audio)
    assert "deformed" in result.text and not transcriber._reject_reason(result, len(audio))
    text_end = max(k for k, t in enumerate(result.tokens) if t < engine.tokenizer.special.eot)
    real = result.tokens[: text_end + 1]  # through the sentence's last text token (".")
    phrase = real[-6:]
    looped = real + phrase * 4
    loop = replace(
        result,
        tokens=looped,
        token_logprobs=result.token_logprobs[: len(real)] + (-0.1,) * (len(looped) - len(real)),
        compression_ratio=3.0,
        text=engine.tokenizer.decode(looped),
    )
    assert transcriber._reject_reason(loop, len(audio)) == "repetition"
    salvaged = transcriber._before_loop(loop)
    assert salvaged is not None and salvaged.tokens == real
    assert salvaged.text.strip() == engine.tokenizer.decode(real).strip()
    assert not transcriber._reject_reason(salvaged, len(audio))
