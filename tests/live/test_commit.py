"""LocalAgreement-n by example (its properties: test_commit_properties.py)."""

from __future__ import annotations

import pytest
from commit_fixtures import MS, agree, feed, reading, sentence, word

from streamer.audio import SAMPLE_RATE
from streamer.live.commit import CommitUpdate, LocalAgreement
from streamer.live.wordtext import common_prefix_length, normalize, words_text

# --- examples -------------------------------------------------------------------------------


def test_agreed_prefix_is_committed_and_the_rest_is_tentative():
    policy = LocalAgreement(2)
    first = policy.update(reading(sentence("the cat sat")))
    assert first == CommitUpdate((), tuple(sentence("the cat sat")))
    second = policy.update(reading(sentence("the cat sits on")))
    assert words_text(second.newly_committed) == "the cat"
    assert words_text(second.tentative) == "sits on"
    assert second.tentative_text == "sits on"
    assert policy.committed_text == "the cat"
    assert policy.committed_end_sample == sentence("the cat")[-1].end_sample


def test_case_and_punctuation_do_not_break_agreement_and_newest_spelling_wins():
    policy = LocalAgreement(2)
    policy.update(reading([word(" hello", 0, 0.5), word(" world", 0.5, 1.0)]))
    update = policy.update(reading([word(" Hello,", 0, 0.5), word(" world.", 0.5, 1.0)]))
    assert [w.text for w in update.newly_committed] == [" Hello,", " world."]


def test_an_agreed_word_the_model_doubts_waits_for_audio_after_it():
    policy = LocalAgreement(2, unsure_probability=0.5, unsure_settle_ms=1000)
    doubted = [word(" the", 0, 0.3, 0.9), word(" aforementioned", 0.3, 1.0, 0.2)]
    after = [word(" Gutenberg", 1.0, 1.5, 0.9)]
    # two readings agree on both words, but the second has only 0.5 s of audio after it
    short = reading(doubted + after, 0, int(1.5 * SAMPLE_RATE))
    assert words_text(feed(policy, reading(doubted), short)) == "the"
    # with a second of audio after it (and still agreed), it commits
    later = reading(doubted + after + [word(" Bible", 1.5, 2.0, 0.9)], 0, int(2.0 * SAMPLE_RATE))
    assert words_text(policy.update(later).newly_committed) == "aforementioned Gutenberg"


def test_a_doubted_word_read_differently_with_more_audio_is_never_committed():
    policy = LocalAgreement(2, unsure_probability=0.5, unsure_settle_ms=1000)
    guess = [word(" the", 0, 0.3), word(" aforementioned", 0.3, 1.0, 0.3)]
    feed(policy, reading(guess), reading(guess))
    better = [word(" the", 0, 0.3), word(" aforesaid", 0.3, 1.0, 0.8), word(" Bible", 1.0, 1.4)]
    feed(policy, reading(better, 0, int(2.1 * SAMPLE_RATE)))
    assert words_text(feed(policy, reading(better, 0, int(2.2 * SAMPLE_RATE)))) == (
        "aforesaid Bible"
    )
    assert policy.committed_text == "the aforesaid Bible"


def test_a_pause_commits_doubted_words_and_the_gate_is_off_by_default():
    gated = LocalAgreement(2, unsure_probability=0.5)
    doubted = [word(" hello", 0, 0.4, 0.1)]
    assert feed(gated, reading(doubted), reading(doubted)) == []
    assert words_text(gated.force_commit().newly_committed) == "hello"
    assert words_text(feed(LocalAgreement(2), reading(doubted), reading(doubted))) == "hello"


def test_a_word_read_otherwise_just_before_the_agreeing_readings_waits_for_one_more():
    """ "asked", "ask", "asked", "asked": the readings are guessing. With the wait the word
    commits when three readings in a row agree; without it, when two do."""
    readings = [reading(sentence(f"my {guess} not")) for guess in ("asked", "ask", "asked")]
    readings += [readings[-1], readings[-1]]
    for contested_wait, commits_at in ((False, 3), (True, 4)):
        policy = LocalAgreement(2, contested_wait=contested_wait)
        texts = [[w.text for w in feed(policy, r)] for r in readings]
        assert next(i for i, t in enumerate(texts) if " asked" in t) == commits_at, texts
    # the word before the contested one is not held back
    policy = LocalAgreement(2, contested_wait=True)
    assert [w.text for w in feed(policy, *readings[:4])] == [" my"]
    # a reading that had not heard the word yet contests nothing
    short = reading(sentence("my"))
    policy = LocalAgreement(2, contested_wait=True)
    feed(policy, short)
    assert [w.text for w in feed(policy, readings[2], readings[2])] == [" my", " asked", " not"]


def test_a_sure_new_word_with_audio_after_it_commits_on_one_reading():
    """Longer steps leave words read whole, with audio after them, in the newest reading
    only; with ``settled_ms`` such a word needs no second reading if the model is sure."""
    first = reading(sentence("the cat"))
    newest = reading(sentence("the cat sat on"), 0, int(2.1 * SAMPLE_RATE))
    settled = LocalAgreement(2, settled_ms=200)
    # "sat" has 0.6 s of audio after it; "on" only 0.1 s, so it waits for a second reading
    assert words_text(feed(settled, first, newest)) == "the cat sat"
    assert words_text(feed(LocalAgreement(2), first, newest)) == "the cat"
    assert words_text(feed(settled, newest)) == "on"


def test_a_settled_word_still_waits_if_doubted_or_if_the_readings_disagree_before_it():
    first = reading(sentence("the cat"))
    doubted = sentence("the cat sat on")
    doubted[2] = word(" sat", 1.0, 1.5, 0.5)
    policy = LocalAgreement(2, settled_ms=200)
    assert words_text(feed(policy, first, reading(doubted, 0, int(2.5 * SAMPLE_RATE)))) == (
        "the cat"
    )
    # the earlier reading heard "hat" where this one hears "cat": nothing past "the" is sure
    policy = LocalAgreement(2, settled_ms=200)
    other, newest = reading(sentence("the hat")), reading(sentence("the cat sat on"), 0, 40000)
    assert words_text(feed(policy, other, newest)) == "the"
    # one reading alone commits nothing: agreement comes first
    assert feed(LocalAgreement(2, settled_ms=200), reading(sentence("a b c"), 0, 40000)) == []


def test_n3_needs_three_agreeing_readings():
    policy = LocalAgreement(3)
    assert feed(policy, reading(sentence("a b")), reading(sentence("a b"))) == []
    assert words_text(feed(policy, reading(sentence("a b c")))) == "a b"


def test_n1_commits_every_reading_at_once():
    policy = LocalAgreement(1)
    assert words_text(feed(policy, reading(sentence("a b")))) == "a b"
    assert words_text(feed(policy, reading(sentence("a b c")))) == "c"


def test_readings_of_a_short_window_need_one_more_agreeing_reading():
    policy = LocalAgreement(2, short_window_ms=2000)
    short = reading(sentence("then moses"), 0, int(1.5 * SAMPLE_RATE))
    assert feed(policy, short, short) == []
    assert words_text(feed(policy, short)) == "then moses"
    longer = reading(sentence("then moses was afraid"), 0, int(2.5 * SAMPLE_RATE))
    assert words_text(feed(policy, longer, longer)) == "was afraid"


def test_words_crammed_at_the_end_of_the_window_do_not_vote():
    """Measured: "chief actors were the chief actors." with the last four words 20 ms long at
    the very end of the window, read the same way twice. Only heard words are committed."""
    policy = LocalAgreement(2)
    heard = sentence("where the chief actors")
    invented = [word(t, 2.0, 2.02) for t in (" were", " the", " chief", " actors.")]
    step = reading([*heard, *invented], 0, int(2.05 * SAMPLE_RATE))
    assert words_text(feed(policy, step, step)) == "where the chief actors"
    update = policy.force_commit(end_of_utterance=True)
    assert words_text(update.newly_committed) == "were the chief actors."


def test_committed_words_are_not_committed_again_when_restated_with_jitter():
    policy = LocalAgreement(2)
    agree(policy, sentence("one two three"))
    assert policy.committed_text == "one two three"
    jittered = [
        word(" one", 0.02, 0.48),
        word(" two", 0.5, 1.04),
        # misheard and overhanging the committed end by 20 ms: still old audio, dropped by time
        word(" tree", 1.0, 1.52),
        word(" four", 1.5, 2.0),
    ]
    assert agree(policy, jittered) == [jittered[-1]]


def test_seam_ngram_restated_with_later_times_is_not_duplicated():
    """Whisper re-aligns the last words with more context: they move past the committed end."""
    policy = LocalAgreement(2)
    agree(policy, sentence("the cat the"))
    assert policy.committed_end_sample == int(1.5 * SAMPLE_RATE)
    shifted = [
        word(" the", 1.0, 1.65),  # all three end more than the tolerance after the committed
        word(" cat", 1.65, 1.9),  # end, so the time filter keeps them
        word(" the", 1.9, 2.1),
        word(" dog", 2.1, 2.5),
    ]
    committed = agree(policy, shifted)
    # the longest overlap ("the cat the") goes, not just "the", which would leave "cat the"
    assert words_text(committed) == "dog"
    assert policy.committed_text == "the cat the dog"


def test_a_short_word_the_committed_end_overlaps_is_kept_when_the_text_aligns():
    """Measured on LJSpeech: "most," was committed ending at 5.86 s; the next reading put
    "most" at 5.38-5.68 and "if" at 5.68-5.88, inside the committed audio by time."""
    policy = LocalAgreement(2)
    first = [word(" differs", 4.6, 4.9), word(" from", 4.9, 5.38), word(" most,", 5.38, 5.86)]
    agree(policy, first)
    assert policy.committed_text == "differs from most,"
    retimed = [
        word(" differs", 4.6, 4.9),
        word(" from", 4.9, 5.38),
        word(" most", 5.38, 5.68),
        word(" if", 5.68, 5.88),
        word(" not", 5.88, 6.18),
    ]
    assert words_text(agree(policy, retimed)) == "if not"


def test_a_word_said_twice_across_the_seam_is_kept_twice():
    """Said twice: "let me tell you, you have seen"; the committed "you" is the first."""
    policy = LocalAgreement(2)
    first = sentence("let me tell you")
    agree(policy, first)
    again = [*first[:3], word(" you,", 1.5, 2.1), word(" you", 2.1, 2.2), word(" have", 2.2, 2.5)]
    assert words_text(agree(policy, again)) == "you have"


@pytest.mark.parametrize(("end_of_utterance", "expected"), [(True, "Her"), (False, "")])
def test_after_the_end_of_an_utterance_nothing_is_restated(end_of_utterance, expected):
    """Silence follows an utterance's end, so a next window's first word equal to the last
    committed one is new speech ("... worst of her. Her conversation"). After a mere pause it
    is taken for the same word read again."""
    policy = LocalAgreement(2)
    first = sentence("worst of her.")
    agree(policy, first)
    policy.force_commit(end_of_utterance=end_of_utterance)
    start = policy.committed_end_sample + 300 * MS
    nxt = [word(" Her", 1.8, 2.0), word(" conversation", 2.0, 2.6)]
    committed = agree(policy, nxt, start)
    assert words_text(committed) == f"{expected} conversation".strip()


def test_a_repeat_well_after_the_committed_end_is_real_speech():
    policy = LocalAgreement(2)
    agree(policy, sentence("no"))
    later = [word(" no", 0.0, 0.5), word(" no", 3.0, 3.5)]
    assert words_text(agree(policy, later)) == "no"
    assert policy.committed_text == "no no"


def test_short_word_right_after_the_committed_end_is_kept():
    policy = LocalAgreement(2)
    agree(policy, sentence("one"))
    short = [word(" one", 0.0, 0.5), word(" a", 0.48, 0.56)]  # overhang 60 ms > half its length
    assert words_text(agree(policy, short)) == "a"


def test_force_commit_commits_the_tail_and_forgets_old_readings():
    policy = LocalAgreement(2)
    feed(policy, reading(sentence("good morning all")), reading(sentence("good morning y'all")))
    update = policy.force_commit()
    assert words_text(update.newly_committed) == "y'all" and update.tentative == ()
    assert policy.force_commit() == CommitUpdate((), ())
    # the next utterance needs n fresh readings: the old ones do not vote
    nxt = sentence("next", start_s=3.0)
    assert feed(policy, reading(nxt)) == []
    assert words_text(feed(policy, reading(nxt))) == "next"


def test_force_commit_until_a_sample_keeps_the_words_after_it_out():
    """An endpoint decided seconds late: the newest reading already holds the next words,
    the last of them cut off mid-word ("Subia..."). Only the words that end by the cut
    (give or take the timing jitter) become final; the rest are read again later."""
    policy = LocalAgreement(2)
    feed(policy, reading(sentence("in the")))
    policy.update(reading(sentence("in the monastery of Subia...")))
    cut = int(1.55 * SAMPLE_RATE)  # 50 ms after "monastery" ends: within the jitter
    update = policy.force_commit(end_of_utterance=True, until_sample=cut)
    assert words_text(update.newly_committed) == "monastery"
    assert update.tentative == () and policy.tentative == ()
    assert policy.committed_end_sample == int(1.5 * SAMPLE_RATE)


def test_a_word_read_again_over_the_same_audio_restates_it_however_spelled():
    """ "Schoffer." made final at a pause, then the same audio read "chauffeur, but by":
    it is the committed word again, not a new one."""
    policy = LocalAgreement(2)
    agree(policy, sentence("only by"))
    policy.update(reading(sentence("only by Schoffer.")))
    policy.force_commit(until_sample=int(1.6 * SAMPLE_RATE))
    again = [*sentence("only by"), word(" chauffeur,", 1.0, 1.75), word(" but", 1.8, 2.1)]
    assert words_text(agree(policy, again)) == "but"


def test_a_common_word_seconds_after_its_committed_copy_is_new_speech():
    """Measured on LJSpeech: "... the letters themselves." committed, then a reading that
    skipped that audio read "the middle ages", its "the" stretched from the window's start
    to 7.3 s later. The older committed "the" aligns by text, but ends seconds earlier."""
    policy = LocalAgreement(2)
    agree(policy, sentence("to the shape of the letters themselves."))
    assert policy.committed_end_sample == int(3.5 * SAMPLE_RATE)  # the last "the" ends at 2.5
    stretched = [word(" the", 0.0, 3.8), *sentence("middle ages brought", start_s=3.8)]
    assert words_text(agree(policy, stretched)) == "the middle ages brought"


def test_a_short_prefix_of_the_last_committed_word_is_not_that_word_again():
    """ "the" starts inside "themselves." only because its start was stretched back."""
    policy = LocalAgreement(2)
    agree(policy, sentence("letters themselves."))
    stretched = [word(" the", 0.9, 1.3), *sentence("middle ages", start_s=1.3)]
    assert words_text(agree(policy, stretched)) == "the middle ages"


@pytest.mark.parametrize(
    ("committed", "read_again", "expected"),
    [
        (" flower", " flower-fattened", "peppered flower-fattened sauce."),  # measured
        (" letter", " letterpress", "peppered letterpress sauce."),
        (" flower.", " flowered", "peppered flower. sauce."),  # closed: the same word again
    ],
)
def test_the_last_committed_word_read_whole_adds_only_its_rest(committed, read_again, expected):
    """Measured: "flower" committed, then the same audio read "flower-fattened": the rest,
    "-fattened", is new, not a second "flower" nor nothing."""
    policy = LocalAgreement(2)
    agree(policy, [word(" peppered", 0.0, 0.5), word(committed, 0.5, 0.9)])
    again = [word(" peppered", 0.0, 0.5), word(read_again, 0.52, 1.4), word(" sauce.", 1.4, 1.9)]
    agree(policy, again)
    assert policy.committed_text == expected


@pytest.mark.parametrize(
    ("newest", "end_of_utterance", "expected"),
    [
        ("a transition between", True, "gothic and roman."),  # it stopped short
        ("a transition between gothic", True, "and roman."),
        ("a transition between goths", True, "goths"),  # read otherwise: the newest stands
        ("a transition between", False, ""),  # a pause: later readings read on
    ],
)
def test_at_the_end_of_an_utterance_an_earlier_reading_that_read_further_counts(
    newest, end_of_utterance, expected
):
    """Measured: the last reading of a file, 30 ms after the one before, stopped at
    "between" and lost "Gothic and Roman" for good (no later window reads that audio)."""
    policy = LocalAgreement(2)
    policy.update(reading(sentence("a transition between gothic and roman."), 0, 51200))
    policy.update(reading(sentence(newest), 0, 52000))
    update = policy.force_commit(end_of_utterance=end_of_utterance)
    assert words_text(update.newly_committed) == expected


def test_a_late_cut_past_agreed_words_is_no_place_to_trim_the_window():
    """A max-length cut at 0.6 s decided when "in the" (to 1.0 s) is already agreed and
    "middle" still tentative: the committed end is mid-phrase, so the window is not cut
    there; a pause after the last word is such a place."""
    policy = LocalAgreement(2)
    feed(policy, reading(sentence("in the")), reading(sentence("in the middle")))
    policy.force_commit(until_sample=int(0.6 * SAMPLE_RATE))
    assert policy.trim_point(0, 2 * SAMPLE_RATE, 30 * SAMPLE_RATE) is None
    agree(policy, sentence("in the middle ages"))
    policy.force_commit(until_sample=int(2.1 * SAMPLE_RATE))
    assert policy.trim_point(0, 3 * SAMPLE_RATE, 30 * SAMPLE_RATE) == 2 * SAMPLE_RATE


def test_trim_point_prefers_the_end_of_a_committed_sentence():
    policy = LocalAgreement(2)
    words = [word(" Hi.", 0, 0.5), word(" How", 0.5, 1.0), word(" are", 1.0, 1.5)]
    agree(policy, words)
    assert policy.trim_point(0, 2 * SAMPLE_RATE, 30 * SAMPLE_RATE) == words[0].end_sample
    # once the window starts there, nothing is cut until the window is too long
    start = words[0].end_sample
    assert policy.trim_point(start, 2 * SAMPLE_RATE, 30 * SAMPLE_RATE) is None
    assert policy.trim_point(start, 2 * SAMPLE_RATE, SAMPLE_RATE) == words[-1].end_sample


def test_trim_point_after_an_endpoint_is_the_segment_end_and_none_without_commits():
    policy = LocalAgreement(2)
    assert policy.trim_point(0, 40 * SAMPLE_RATE, 30 * SAMPLE_RATE) is None
    policy.update(reading(sentence("no full stop")))
    policy.force_commit()
    assert policy.trim_point(0, 3 * SAMPLE_RATE, 30 * SAMPLE_RATE) == int(1.5 * SAMPLE_RATE)


def test_memory_is_bounded_over_a_long_stream():
    policy = LocalAgreement(2, keep_words=50)
    for i in range(2000):
        update = reading([word(f" w{i}", i * 0.5, i * 0.5 + 0.4)])
        policy.update(update)
        policy.update(update)
    assert policy.n_committed == 2000
    assert len(policy.committed_words) == 50
    assert policy.committed_words[-1].text == " w1999"


def test_empty_and_silent_readings_commit_nothing():
    policy = LocalAgreement(2)
    assert agree(policy, []) == []
    assert policy.committed_end_sample == 0 and policy.committed_text == ""


@pytest.mark.parametrize("bad", [{"n": 0}, {"keep_words": 0}], ids=["n0", "keep0"])
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(ValueError):
        LocalAgreement(**bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(" Hello,", "hello"), (" DON'T!", "dont"), ("...", ""), (" naïve", "naïve")],
    ids=["comma", "apostrophe", "only-punct", "unicode"],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_common_prefix_length():
    assert common_prefix_length([sentence("a b c"), sentence("A b. d")]) == 2
    assert common_prefix_length([sentence("a b"), sentence("a b c")]) == 2
    assert common_prefix_length([]) == 0
