"""Whisper's tokenizer over ``tokenizers``: special ids, text, words, incremental decoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from streamer.engine.script import has_spaceless, is_spaceless_char, unit_spans
from streamer.errors import ModelLoadError
from streamer.languages import LANGUAGES

REPLACEMENT_CHAR = "\ufffd"


@dataclass(frozen=True)
class SpecialTokens:
    eot: int
    sot: int
    sot_prev: int
    sot_lm: int
    no_speech: int
    no_timestamps: int
    timestamp_begin: int
    transcribe: int
    translate: int


class Tokenizer:
    """Encodes text and decodes token ids; ids >= ``timestamp_begin`` are timestamps."""

    def __init__(self, model_dir: Path):
        path = Path(model_dir) / "tokenizer.json"
        try:
            self._tokenizer = HFTokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception
            raise ModelLoadError(
                f"cannot load {path}; rebuild with: streamer models build --force"
            ) from error
        self.special = self._read_special_tokens(Path(model_dir))

    def _id(self, *texts: str) -> int | None:
        for text in texts:
            token_id = self._tokenizer.token_to_id(text)
            if token_id is not None:
                return token_id
        return None

    def _read_special_tokens(self, model_dir: Path) -> SpecialTokens:
        generation: dict = {}
        config_path = model_dir / "generation_config.json"
        if config_path.exists():
            generation = json.loads(config_path.read_text())
        no_timestamps = generation.get("no_timestamps_token_id") or self._id("<|notimestamps|>")
        ids = dict(
            eot=generation.get("eos_token_id") or self._id("<|endoftext|>"),
            sot=generation.get("decoder_start_token_id") or self._id("<|startoftranscript|>"),
            sot_prev=generation.get("prev_sot_token_id") or self._id("<|startofprev|>"),
            sot_lm=self._id("<|startoflm|>"),
            no_speech=self._id("<|nospeech|>", "<|nocaptions|>"),
            no_timestamps=no_timestamps,
            timestamp_begin=None if no_timestamps is None else no_timestamps + 1,
            transcribe=self._id("<|transcribe|>"),
            translate=self._id("<|translate|>"),
        )
        missing = [name for name, value in ids.items() if value is None]
        if missing:
            raise ModelLoadError(f"{model_dir} tokenizer lacks special tokens: {missing}")
        return SpecialTokens(**ids)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, tokens: list[int] | tuple[int, ...]) -> str:
        """Text of the non-timestamp, non-special tokens."""
        return self._tokenizer.decode([t for t in tokens if t < self.special.eot])

    def token_text(self, token: int) -> str:
        return self._tokenizer.id_to_token(token) or ""

    @cached_property
    def language_tokens(self) -> dict[str, int]:
        """Code -> id of each ``<|xx|>`` language token the vocabulary has (an English-only
        vocabulary has them too, untrained: ``engine.language`` reads only ``en`` there)."""
        ids = {code: self._id(f"<|{code}|>") for code in LANGUAGES}
        return {code: token for code, token in ids.items() if token is not None}

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens of symbols that are never speech (Whisper's ``non_speech_tokens``)."""
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Group text tokens into words: a word starts at a token with a leading space; the
        pieces never split a multi-byte character."""
        words, word_tokens = [], []
        current: list[int] = []
        for token in tokens:
            if token >= self.special.eot:
                continue
            candidate = [*current, token]
            text = self.decode([token])
            # punctuation stays with the word before it, as a reader expects
            starts_word = text.startswith(" ")
            if current and starts_word and REPLACEMENT_CHAR not in self.decode(current):
                words.append(self.decode(current))
                word_tokens.append(current)
                current = [token]
            else:
                current = candidate
        if current:
            words.append(self.decode(current))
            word_tokens.append(current)
        return words, word_tokens

    def split_to_units(self, tokens: list[int]) -> tuple[list[str], list[float]]:
        """Words as ``split_to_word_tokens`` forms them, with those holding characters of a
        spaceless script (Chinese, Japanese, Thai...) cut into units of one character (see
        ``script.unit_spans``). Returns the units and their boundaries as positions in the
        text tokens (n + 1 of them): a token that spells several characters is shared out
        evenly among them, a character spelled by several tokens spans them all. A space
        Whisper puts before such a character is dropped where nothing before it in the
        reading needs one (the script has none; "一 个" is "一个")."""
        words, word_tokens = self.split_to_word_tokens(tokens)
        texts: list[str] = []
        boundaries: list[float] = [0]
        for word, pieces in zip(words, word_tokens):
            offset = boundaries[-1]
            if not has_spaceless(word):
                texts.append(word)
                boundaries.append(offset + len(pieces))
                continue
            char_ends = self._character_ends(word, pieces)
            for start, end in unit_spans(word):
                unit = word[start:end]
                if is_spaceless_char(unit.lstrip()[:1]) and (not texts or has_spaceless(texts[-1])):
                    unit = unit.lstrip()
                texts.append(unit)
                boundaries.append(offset + char_ends[end - 1])
            boundaries[-1] = offset + len(pieces)
        return texts, boundaries

    def _character_ends(self, word: str, pieces: list[int]) -> list[float]:
        """Where each character of ``word`` (the text of ``pieces``) ends, in tokens."""
        ends = [float(len(pieces))] * len(word)
        done = 0  # characters complete so far
        for index in range(len(pieces)):
            text = self.decode(pieces[: index + 1]).rstrip(REPLACEMENT_CHAR)
            complete = min(max(done, len(text)), len(word))
            for char in range(done, complete):
                ends[char] = index + (char - done + 1) / (complete - done)
            done = complete
        return ends


class IncrementalDetokenizer:
    """Turns a growing token sequence into text deltas that never contain broken UTF-8.

    Byte-level BPE may split one character across tokens; until the bytes are complete the
    decoded text ends in U+FFFD, so those tokens are held back (as whisper's tokenizer does).
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._tokens: list[int] = []
        self._emitted_tokens = 0  # tokens whose text has been emitted
        self._text = ""

    def push(self, tokens: list[int] | tuple[int, ...]) -> str:
        """Add tokens; return the newly complete text (possibly empty)."""
        self._tokens.extend(t for t in tokens if t < self.tokenizer.special.eot)
        pending = self._tokens[self._emitted_tokens :]
        if not pending:
            return ""
        text = self.tokenizer.decode(self._tokens)
        # hold back trailing tokens until their bytes form complete characters
        while pending and text.endswith(REPLACEMENT_CHAR):
            pending = pending[:-1]
            text = self.tokenizer.decode(self._tokens[: self._emitted_tokens + len(pending)])
        if not pending:
            return ""
        self._emitted_tokens += len(pending)
        delta = text[len(self._text) :] if text.startswith(self._text) else text
        self._text = text
        return delta

    def flush(self) -> str:
        """Emit whatever is held back (replacement characters removed)."""
        text = self.tokenizer.decode(self._tokens).replace(REPLACEMENT_CHAR, "")
        delta = text[len(self._text) :] if text.startswith(self._text) else ""
        self._emitted_tokens = len(self._tokens)
        self._text = text
        return delta

    @property
    def text(self) -> str:
        return self._text
