"""LocalAgreement-n: Hypothesis properties of the committed stream, and the sentence stop
held at a pause."""

from __future__ import annotations

from commit_fixtures import MS, agree, feed, reading, sentence, word
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.audio import SAMPLE_RATE
from streamer.live.commit import CommitUpdate, LocalAgreement
from streamer.live.wordtext import SENTENCE_END, normalize, words_text
from streamer.types import Hypothesis, Word

# --- properties -----------------------------------------------------------------------------

VOCAB = [" the", " The", " cat", " cat,", " sat.", " a", " no", " No!", " dog"]
FORCE = "force"

arbitrary_word = st.builds(
    lambda text, start, length: Word(text, start, start + length),
    st.sampled_from(VOCAB),
    st.integers(0, 10 * SAMPLE_RATE),
    st.integers(-50 * MS, SAMPLE_RATE),  # includes zero-length and backwards words
)
arbitrary_reading = st.lists(arbitrary_word, max_size=8).map(reading)
# a force commit of the whole tail, or of the words that end by a sample
arbitrary_force = st.tuples(st.just(FORCE), st.none() | st.integers(0, 11 * SAMPLE_RATE))
operations = st.lists(st.one_of(arbitrary_reading, arbitrary_force), max_size=14)


def apply(policy: LocalAgreement, operation) -> CommitUpdate:
    if isinstance(operation, Hypothesis):
        return policy.update(operation)
    until = operation[1]
    tentative = policy.tentative
    update = policy.force_commit(until_sample=until)
    # the leading words of the tentative tail: all of them, or those that end by ``until``
    # (a sentence stop may be held back at the pause, or come before them: see below)
    said = [w.text for w in update.newly_committed if normalize(w.text)]
    ready = tentative[: len(said)]
    assert [normalize(text) for text in said] == [normalize(w.text) for w in ready]
    if until is None:
        assert len(ready) == len(tentative)
    else:
        slack = 100 * MS  # the policy's default timing tolerance
        assert all(w.end_sample <= until + slack for w in ready)
        assert len(ready) == len(tentative) or tentative[len(ready)].end_sample > until + slack
    return update


@settings(max_examples=200, deadline=None)
@given(operations, st.integers(1, 3), st.booleans(), st.sampled_from([0, 200]))
def test_committed_stream_is_append_only_monotonic_and_bounded(ops, n, contested_wait, settled):
    policy = LocalAgreement(n, keep_words=6, contested_wait=contested_wait, settled_ms=settled)
    stream: list[Word] = []
    fed_texts = set()
    for operation in ops:
        if isinstance(operation, Hypothesis):
            fed_texts |= {w.text for w in operation.words}
        before = policy.committed_words
        update = apply(policy, operation)
        stream += update.newly_committed
        # what was committed stays, unchanged, and new words only append
        assert policy.committed_words == (before + update.newly_committed)[-6:]
        assert policy.n_committed == len(stream)
        assert policy.committed_end_sample == (stream[-1].end_sample if stream else 0)
    stopless = {text.rstrip("".join(SENTENCE_END)) for text in fed_texts}
    assert {w.text for w in stream if normalize(w.text)} <= fed_texts | stopless
    assert {w.text for w in stream if not normalize(w.text)} <= set(SENTENCE_END)
    for previous, current in zip(stream, stream[1:], strict=False):
        assert current.start_sample >= previous.end_sample
    assert all(w.start_sample <= w.end_sample for w in stream)


@settings(max_examples=200, deadline=None)
@given(operations, arbitrary_reading, st.integers(1, 3), st.integers(1, 3))
def test_feeding_the_same_reading_again_commits_nothing_more(ops, repeated, n, extra):
    policy = LocalAgreement(n)
    for operation in ops:
        apply(policy, operation)
    for _ in range(n):
        settled = policy.update(repeated)
    state = (policy.n_committed, policy.committed_words, policy.committed_end_sample)
    for _ in range(extra):
        again = policy.update(repeated)
        assert again.newly_committed == ()
        assert again.tentative == settled.tentative == ()
    assert (policy.n_committed, policy.committed_words, policy.committed_end_sample) == state


@st.composite
def speech(draw):
    """Ground truth words (distinct), the audio ends of the steps, and a seeded noise source."""
    n_words = draw(st.integers(1, 25))
    time = draw(st.integers(0, SAMPLE_RATE))
    truth = []
    for index in range(n_words):
        time += draw(st.integers(0, 300)) * MS
        length = draw(st.integers(200, 600)) * MS
        ending = draw(st.sampled_from(["", "", "", ".", ","]))
        probability = draw(st.floats(0.0, 1.0))
        truth.append(Word(f" W{index}{ending}", time, time + length, probability))
        time += length
    steps = draw(st.lists(st.integers(truth[0].start_sample, time), max_size=15))
    return truth, sorted(steps), draw(st.randoms(use_true_random=False))


def noisy_reading(visible, n_committed, rng, step, *, unstable=True):
    """How Whisper re-reads the window: timing jitter, re-aligned seam words, unstable tail
    (guesses the model is not sure of)."""
    words = []
    for w in visible:
        jitter = rng.randint(-40, 40) * MS
        text = w.text.lower() if rng.random() < 0.2 else w.text
        # each reading doubts a word by its own amount
        probability = min(1.0, w.probability + rng.random() * 0.3)
        words.append(Word(text, w.start_sample + jitter, w.end_sample + jitter, probability))
    # re-align the last few committed words later, past the committed end
    restated = [i for i, w in enumerate(visible) if int(w.text[2:].rstrip(".,")) < n_committed]
    if restated and rng.random() < 0.5:
        shift = rng.randint(150, 400) * MS
        for i in restated[-rng.randint(1, 5) :]:
            moved = words[i]
            words[i] = Word(moved.text, moved.start_sample + shift, moved.end_sample + shift)
    # the newest words are still unstable: each step guesses something else
    n_new = len(words) - len(restated)
    for i in range(len(words) - min(n_new, rng.randint(0, 2) if unstable else 0), len(words)):
        guess = f" guess{step}x{i}"
        words[i] = Word(guess, words[i].start_sample, words[i].end_sample, rng.random() * 0.79)
    return words


@settings(max_examples=150, deadline=None)
@given(
    speech(),
    st.integers(2, 3),
    st.sampled_from([0.0, 0.5, 0.9]),
    st.booleans(),
    st.sampled_from([0, 200]),
)
def test_streamed_commits_equal_the_spoken_words_without_seam_duplicates(
    case, n, unsure, contested_wait, settled
):
    truth, steps, rng = case
    policy = LocalAgreement(
        n,
        unsure_probability=unsure,
        unsure_settle_ms=800,
        contested_wait=contested_wait,
        settled_ms=settled,
    )
    window_start = 0
    stream: list[Word] = []
    end_of_speech = truth[-1].end_sample
    for step, step_end in enumerate([*steps, end_of_speech]):
        visible = [w for w in truth if window_start < w.end_sample <= step_end]
        last = step_end == end_of_speech and step == len(steps)
        words = noisy_reading(visible, len(stream), rng, step, unstable=not last)
        stream += policy.update(reading(words, window_start, step_end)).newly_committed
        # committed words are a prefix of the truth at every step
        assert [normalize(w.text) for w in stream] == [
            normalize(w.text) for w in truth[: len(stream)]
        ]
        cut = policy.trim_point(window_start, step_end, 3 * SAMPLE_RATE)
        window_start = cut if cut is not None else window_start
    stream += policy.force_commit().newly_committed
    assert [normalize(w.text) for w in stream] == [normalize(w.text) for w in truth]
    for previous, current in zip(stream, stream[1:], strict=False):
        assert current.start_sample >= previous.end_sample


# --- a sentence stop at a pause -------------------------------------------------------------


def _up_to_pause(policy: LocalAgreement, first: list[Word]) -> CommitUpdate:
    """Two readings agree on all of ``first`` but its last word, the newest one read at the
    pause; then the pause commits it."""
    feed(policy, reading(first[:-1]), reading(first))
    return policy.force_commit()


def _pause_then(policy: LocalAgreement, first: list[Word], later: list[Word]) -> str:
    """``first`` up to a pause, then two readings agree on ``later``: the committed text."""
    _up_to_pause(policy, first)
    agree(policy, later)
    return words_text(policy.committed_words)


def test_a_pause_mid_sentence_leaves_no_stop_behind():
    """Measured: "may just be considered. as the invention": the reading at the pause closed
    the sentence the speaker went on with."""
    policy = LocalAgreement(2)
    at_pause = [*sentence("may just be"), word(" considered.", 1.5, 2.0)]
    going_on = [*sentence("may just be considered"), *sentence("as the invention", 2.3)]
    assert _pause_then(policy, at_pause, going_on) == "may just be considered as the invention"


def test_a_pause_that_ends_the_sentence_keeps_its_stop():
    policy = LocalAgreement(2)
    at_pause = [*sentence("it was late"), word(" indeed.", 1.5, 2.0)]
    anew = [*sentence("it was late"), word(" indeed.", 1.5, 2.0), *sentence("The next", 2.6)]
    assert _pause_then(policy, at_pause, anew) == "it was late indeed. The next"


def test_the_end_of_the_utterance_commits_a_held_stop():
    policy = LocalAgreement(2)
    at_pause = _up_to_pause(policy, [*sentence("and so"), word(" home?", 1.0, 1.4)])
    assert words_text(at_pause.newly_committed) == "home"
    assert words_text(policy.force_commit().newly_committed) == ""  # a second pause
    assert policy.force_commit(end_of_utterance=True).newly_committed[-1].text == "?"
    assert policy.committed_text == "and so home?"


class _StopAsRead(LocalAgreement):
    """The policy as it was: a stop read at a pause is committed there."""

    def _hold_stop(self, words):
        return words


@settings(max_examples=200, deadline=None)
@given(operations, st.integers(1, 3), st.booleans())
def test_holding_the_stop_moves_punctuation_only(ops, n, end):
    """The same readings and pauses commit the same words, with or without the held stop;
    at the end of the utterance no stop read at the last pause is lost."""
    held, as_read = LocalAgreement(n), _StopAsRead(n)
    streams: dict[int, list[Word]] = {id(held): [], id(as_read): []}
    for operation in [*ops, (FORCE, None)]:
        for policy in (held, as_read):
            streams[id(policy)] += apply(policy, operation).newly_committed
    for policy in (held, as_read):
        streams[id(policy)] += policy.force_commit(end_of_utterance=end).newly_committed
    words = {key: [normalize(w.text) for w in s if normalize(w.text)] for key, s in streams.items()}
    assert words[id(held)] == words[id(as_read)]
    if end:
        assert words_text(streams[id(held)]).endswith(words_text(streams[id(as_read)])[-1:])
