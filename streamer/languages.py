"""Whisper's languages: the codes its multilingual models know, and the names users type.

The table is openai/whisper's ``tokenizer.LANGUAGES`` (99 languages, and ``yue`` that only
the large-v3 vocabulary has); a loaded model's own ``<|xx|>`` tokens decide which of them it
can read (``Tokenizer.language_tokens``). This module checks the spelling early, in config.
"""

from __future__ import annotations

from streamer.errors import ConfigError

AUTO = "auto"  # detect the language from the audio

# code -> English name, in the order of the models' language tokens
LANGUAGES = dict(
    pair.split(":")
    for pair in (
        "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese "
        "pt:portuguese tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish "
        "it:italian id:indonesian hi:hindi fi:finnish vi:vietnamese he:hebrew uk:ukrainian "
        "el:greek ms:malay cs:czech ro:romanian da:danish hu:hungarian ta:tamil no:norwegian "
        "th:thai ur:urdu hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori "
        "ml:malayalam cy:welsh sk:slovak te:telugu fa:persian lv:latvian bn:bengali "
        "sr:serbian az:azerbaijani sl:slovenian kn:kannada et:estonian mk:macedonian "
        "br:breton eu:basque is:icelandic hy:armenian ne:nepali mn:mongolian bs:bosnian "
        "kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi pa:punjabi si:sinhala "
        "km:khmer sn:shona yo:yoruba so:somali af:afrikaans oc:occitan ka:georgian "
        "be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic yi:yiddish lo:lao uz:uzbek "
        "fo:faroese ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese sa:sanskrit "
        "lb:luxembourgish my:myanmar bo:tibetan tl:tagalog mg:malagasy as:assamese tt:tatar "
        "haw:hawaiian ln:lingala ha:hausa ba:bashkir jw:javanese su:sundanese yue:cantonese"
    ).split()
)
LANGUAGES = {code: name.replace("_", " ") for code, name in LANGUAGES.items()}

# names -> codes, with the other names openai/whisper accepts
NAME_TO_CODE = {name: code for code, name in LANGUAGES.items()} | {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}


def language_code(value: str, where: str = "decode.language") -> str:
    """``value`` (a code, a language's name, or ``auto``) as a code, or ``auto``; a
    ``ConfigError`` listing the valid codes for anything else."""
    spelled = value.strip().lower()
    if spelled == AUTO or spelled in LANGUAGES:
        return spelled
    if spelled in NAME_TO_CODE:
        return NAME_TO_CODE[spelled]
    valid = " ".join(LANGUAGES)
    raise ConfigError(f"{where} = {value!r} is not a language code; valid: auto, {valid}")
