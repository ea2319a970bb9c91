"""LocalAgreement over text without spaces: units of one character, as word timing cuts them.

Characters repeat far more than words do ("的", "是", "一个一个"), are short, and carry no
spaces: nothing may be lost or committed twice across readings and window moves, and the
committed text must be the spoken text, joined without inserted spaces.
"""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamer.audio import SAMPLE_RATE
from streamer.engine.script import units
from streamer.live.commit import LocalAgreement
from streamer.live.reading import drop_crammed_tail, drop_squeezed_repeats, lacks_audio
from streamer.live.wordtext import normalize
from streamer.types import Hypothesis, Word

MS = SAMPLE_RATE // 1000
COMMON = "我们你他是的了在有不这个人中大来上国到说"  # few, so they repeat
MIXED = [*COMMON, "Python", "3.5", "，", "。"]


def hypothesis(words, window_start: int, window_end: int) -> Hypothesis:
    return Hypothesis(tuple(words), (), window_start, window_end, -0.2, 0.01, 1.2)


@st.composite
def spoken(draw):
    """A spoken text cut into units with their audio, the ends of the steps, and a seeded
    noise source."""
    pieces = draw(st.lists(st.sampled_from(MIXED), min_size=1, max_size=30))
    text = "".join(pieces).lstrip("，。") or "我"
    # characters repeat, but neither right after themselves nor in the same pairs: a restated
    # copy re-aligned in time by a character's length is then told apart from the next one
    # by nothing ("谢谢" and "我我们我我们" are left to the time-only examples below)
    pairs = [text[i : i + 2] for i in range(len(text) - 1)]
    assume(len(set(pairs)) == len(pairs) and all(a != b for a, b in zip(text, text[1:])))
    time = draw(st.integers(0, SAMPLE_RATE))
    truth = []
    for unit in units(text):
        time += draw(st.integers(0, 80)) * MS
        length = draw(st.integers(120, 300)) * MS * (2 if unit.isascii() else 1)
        truth.append(Word(unit, time, time + length, draw(st.floats(0.0, 1.0))))
        time += length
    steps = draw(st.lists(st.integers(truth[0].start_sample, time), max_size=15))
    return text, truth, sorted(steps), draw(st.randoms(use_true_random=False))


def noisy_reading(
    visible: list[Word], n_restated: int, rng, step: int, unstable: bool
) -> list[Word]:
    """A re-reading of the window: timing jitter, the last of the ``n_restated`` committed
    characters re-aligned later, past the committed end, and the last characters still
    guesses (drawn outside the spoken ones, so a guess is always wrong)."""
    words = []
    for w in visible:
        jitter = rng.randint(-30, 30) * MS
        probability = min(1.0, w.probability + rng.random() * 0.3)
        words.append(Word(w.text, w.start_sample + jitter, w.end_sample + jitter, probability))
    if n_restated and rng.random() < 0.5:
        shift = rng.randint(40, 110) * MS  # up to most of a character
        for i in range(max(0, n_restated - rng.randint(1, 3)), n_restated):
            moved = words[i]
            words[i] = Word(moved.text, moved.start_sample + shift, moved.end_sample + shift)
    n_guesses = min(len(words), rng.randint(0, 2)) if unstable else 0
    for i in range(len(words) - n_guesses, len(words)):
        guess = chr(0x5000 + 7 * step + i)  # an ideograph no one said
        words[i] = Word(guess, words[i].start_sample, words[i].end_sample, rng.random() * 0.79)
    return words


@settings(max_examples=150, deadline=None)
@given(spoken(), st.integers(2, 3), st.sampled_from([0.0, 0.6]))
def test_streamed_characters_are_the_spoken_text_once_without_inserted_spaces(case, n, unsure):
    text, truth, steps, rng = case
    policy = LocalAgreement(n, unsure_probability=unsure, unsure_settle_ms=1000)
    window_start = 0
    stream: list[Word] = []
    end_of_speech = truth[-1].end_sample
    for step, step_end in enumerate([*steps, end_of_speech]):
        visible = [w for w in truth if window_start < w.end_sample <= step_end]
        last = step == len(steps)
        restated = sum(truth.index(w) < len(stream) for w in visible)
        words = noisy_reading(visible, restated, rng, step, unstable=not last)
        stream += policy.update(hypothesis(words, window_start, step_end)).newly_committed
        # what is committed is the start of what was said, at every step
        assert [normalize(w.text) for w in stream] == [
            normalize(w.text) for w in truth[: len(stream)]
        ]
        cut = policy.trim_point(window_start, step_end, 2 * SAMPLE_RATE)
        window_start = cut if cut is not None else window_start
    stream += policy.force_commit(end_of_utterance=True).newly_committed
    assert [normalize(w.text) for w in stream] == [normalize(w.text) for w in truth]
    # joined as committed, the units give back the text: no space was put between them
    assert "".join(w.text for w in stream) == text
    for previous, current in zip(stream, stream[1:]):
        assert current.start_sample >= previous.end_sample


def _characters(text: str, start_s: float, length_s: float) -> list[Word]:
    step = int(length_s * SAMPLE_RATE)
    begin = int(start_s * SAMPLE_RATE)
    return [Word(c, begin + i * step, begin + (i + 1) * step) for i, c in enumerate(text)]


def test_a_character_read_again_otherwise_over_committed_audio_is_not_new():
    # measured: "五釘舟" committed at a pause, the next reading "五定州,中国" with the comma's
    # pause stretching "州," far past the committed end
    policy = LocalAgreement(2)
    committed = _characters("五釘舟", 0.66, 0.3)
    policy.update(hypothesis(committed, 0, committed[-1].end_sample + 3200))
    policy.force_commit()
    end = policy.committed_end_sample
    reread = [
        *_characters("五定", 0.66, 0.3),
        Word("州,", end - 4000, end + 8000),
        *_characters("中国", (end + 8000) / SAMPLE_RATE, 0.25),
    ]
    window_end = reread[-1].end_sample + 4800
    new = []
    for _ in range(2):
        new += policy.update(hypothesis(reread, 0, window_end)).newly_committed
    assert "".join(w.text for w in new) == "中国"


def test_a_character_said_twice_is_speech_and_a_squeezed_phrase_is_not():
    said_twice = _characters("谢谢你们", 0.0, 0.25)
    assert drop_squeezed_repeats(said_twice) == said_twice
    # "一个人" read again at the window's end in 20 ms characters: one copy
    squeezed = [*_characters("一个人", 0.0, 0.25), *_characters("一个人", 0.75, 0.02)]
    kept = drop_squeezed_repeats(squeezed)
    assert "".join(w.text for w in kept) == "一个人"


def test_a_spaceless_reading_loses_a_crammed_tail_only_when_it_is_long():
    spoken_ = _characters("我们在这里", 0.0, 0.25)
    three = [*spoken_, *_characters("的人是", 1.25, 0.02)]
    assert drop_crammed_tail(three) == three  # three characters are a word or so
    four = [*spoken_, *_characters("的人是大", 1.25, 0.02)]
    assert drop_crammed_tail(four) == spoken_


def test_a_reading_whose_characters_mostly_have_no_audio_is_invented():
    # measured: the committed text read again from the prompt over a noise
    invented = [*_characters("中国", 6.69, 0.02), *_characters("文", 6.73, 0.4)]
    invented += _characters("化学院教授", 7.15, 0.02)
    assert lacks_audio(invented)
    assert not lacks_audio(_characters("中国文化学院", 0.0, 0.2))
    # words of other scripts are judged by the other guards
    assert not lacks_audio([Word(" a", 0, 320), Word(" b", 320, 640), Word(" c", 640, 960)])


def test_characters_where_the_readings_part_wait_for_the_word_to_be_read():
    # "美國家" agreed, then the readings part: "家" may be the start of "加利福尼亞"
    first = _characters("美國家地", 0.0, 0.2)
    second = [*_characters("美國家", 0.0, 0.2), *_characters("加", 0.6, 0.2)]
    policy = LocalAgreement(2)
    committed = [*policy.update(hypothesis(first, 0, 16000)).newly_committed]
    committed += policy.update(hypothesis(second, 0, 16000)).newly_committed
    assert "".join(w.text for w in committed) == "美國"
    # English words commit as far as the readings agree
    words = [Word(" so", 0, 3200), Word(" far", 3200, 6400)]
    policy = LocalAgreement(2)
    policy.update(hypothesis([*words, Word(" good", 6400, 9600)], 0, 16000))
    update = policy.update(hypothesis([*words, Word(" well", 6400, 9600)], 0, 16000))
    assert [w.text for w in update.newly_committed] == [" so", " far"]
