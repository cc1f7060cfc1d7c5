"""Parallel sentences in English, French, Spanish, German and Italian, and tokenisers for a model.

The corpus is synthesised, so it is offline, exact and as large as a chapter needs: a sentence is a
*template* ("I have {n} books" / "j'ai {n} livres" / "tengo {n} libros" / "ich habe {n} Bücher" /
"ho {n} libri") filled with a number spelled out in words by ``num2words``. Templates are a frame
(six of them) times a noun (eight of them), 48 in all. The spoken corpus of
:mod:`reprobook.data.speech` reads these same sentences aloud.

Grammar is kept simple and right:

* every French, Spanish and Italian noun is masculine, so numbers never need a feminine form
  ("vingt et un chats", "doscientos gatos");
* numbers run from 2 to ``max_number`` (at most 999), so every noun is plural, and numbers ending in
  01 (101, 201, ...) are left out: German would need an inflected "-ein" ("hundertein Bücher")
  that ``num2words`` does not produce;
* Spanish "uno" drops its final vowel before a noun, as the grammar requires: "veintiún gatos",
  "treinta y un gatos";
* Italian "-uno" drops its final vowel too ("ventun gatti", "centotrentun libri"). Grammars accept
  "ventuno gatti" as well; the truncated form is the usual one before a noun and mirrors Spanish.
  Two slips of ``num2words`` 0.5.14 are corrected: 118, 218, ... come out as "centodicotto" (for
  "centodiciotto"), and compounds ending in "tre" lose their accent past 100 ("centoventitre" for
  "centoventitré", while it writes "ventitré" and "centotré").

Sentences are lower case without punctuation, except German nouns and the English "I".
German and Italian write a number as one word ("dreihunderteinundzwanzig", "trecentoventun"), so a
word-level vocabulary in those languages holds one token per number and meets unseen numbers at test
time; the character level does not.

Typical use::

    splits = parallel_corpus("en", "fr", size=5_000, seed=0)
    src_vocab = Vocabulary.build((s for s, _ in splits.train), level="word")
    ids, lengths = pad_batch([src_vocab.encode(s) for s, _ in splits.train[:32]])
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from num2words import num2words

from reprobook._validate import check_choice, check_range

LANGUAGES = ("en", "fr", "es", "de", "it")  # new languages go last: columns below follow this order
LEVELS = ("word", "char")
MAX_NUMBER = 999

# Frames and nouns, in the order of LANGUAGES. The French, Spanish and Italian nouns are all masculine
# (Italian "battelli", not the feminine "barche").
_FRAMES: tuple[tuple[str, str, str, str, str], ...] = (
    ("{n} {x}", "{n} {x}", "{n} {x}", "{n} {x}", "{n} {x}"),
    ("I have {n} {x}", "j'ai {n} {x}", "tengo {n} {x}", "ich habe {n} {x}", "ho {n} {x}"),
    ("we have {n} {x}", "nous avons {n} {x}", "tenemos {n} {x}", "wir haben {n} {x}", "abbiamo {n} {x}"),
    ("I see {n} {x}", "je vois {n} {x}", "veo {n} {x}", "ich sehe {n} {x}", "vedo {n} {x}"),
    ("there are {n} {x}", "il y a {n} {x}", "hay {n} {x}", "es gibt {n} {x}", "ci sono {n} {x}"),
    ("they want {n} {x}", "ils veulent {n} {x}", "quieren {n} {x}", "sie wollen {n} {x}", "vogliono {n} {x}"),
)
_NOUNS: tuple[tuple[str, str, str, str, str], ...] = (
    ("cats", "chats", "gatos", "Katzen", "gatti"),
    ("dogs", "chiens", "perros", "Hunde", "cani"),
    ("books", "livres", "libros", "Bücher", "libri"),
    ("birds", "oiseaux", "pájaros", "Vögel", "uccelli"),
    ("trees", "arbres", "árboles", "Bäume", "alberi"),
    ("horses", "chevaux", "caballos", "Pferde", "cavalli"),
    ("trains", "trains", "trenes", "Züge", "treni"),
    ("boats", "bateaux", "barcos", "Boote", "battelli"),
)
NUM_TEMPLATES = len(_FRAMES) * len(_NOUNS)

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


@dataclass(frozen=True)
class Splits:
    """Train/valid/test lists of ``(source, target)`` sentence pairs; no pair appears in two splits."""

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]


def _usable(n: int) -> bool:
    """Whether the templates take ``n``: 2..999 without the numbers ending in 01 (see module docstring)."""
    return 2 <= n <= MAX_NUMBER and n % 100 != 1


def numbers(max_number: int = MAX_NUMBER) -> list[int]:
    """The numbers the templates take, in increasing order: 2..``max_number`` without those ending in 01."""
    check_range("max_number", max_number, 2, MAX_NUMBER)
    return [n for n in range(2, max_number + 1) if _usable(n)]


def max_pairs(max_number: int = MAX_NUMBER) -> int:
    """How many distinct sentence pairs exist for numbers up to ``max_number``: the largest ``size``."""
    return len(numbers(max_number)) * NUM_TEMPLATES


@functools.cache
def _spell(n: int, lang: str) -> str:
    """``n`` in words, in the form used before a masculine plural noun."""
    words: str = num2words(n, lang=lang)
    if lang == "es" and words.endswith("veintiuno"):  # apocope before a noun: veintiún gatos
        return words.removesuffix("veintiuno") + "veintiún"
    if lang == "es" and words.endswith("uno"):  # ... and treinta y un gatos
        return words.removesuffix("o")
    if lang == "it":
        words = words.replace("dicotto", "diciotto")  # num2words slip: centodicotto
        if words.endswith("tre") and words != "tre":  # num2words slip: centoventitre
            words = words.removesuffix("tre") + "tré"
        if words.endswith("uno"):  # apocope before a noun: ventun gatti
            words = words.removesuffix("o")
    return words


def sentence(n: int, template: int, lang: str) -> str:
    """Template number ``template`` (0 <= template < 48) filled with ``n`` spelled out in ``lang``."""
    check_choice("lang", lang, LANGUAGES)
    check_range("template", template, 0, NUM_TEMPLATES - 1)
    if not _usable(n):
        raise ValueError(f"n={n!r} is not valid; expected 2 <= n <= {MAX_NUMBER}, not ending in 01")
    return _sentence(n, template, lang)


def _sentence(n: int, template: int, lang: str) -> str:
    frame, noun = divmod(template, len(_NOUNS))
    i = LANGUAGES.index(lang)
    return _FRAMES[frame][i].format(n=_spell(n, lang), x=_NOUNS[noun][i])


def parallel_corpus(
    src: str = "en", tgt: str = "fr", size: int = 5_000, seed: int = 0, max_number: int = MAX_NUMBER
) -> Splits:
    """``size`` distinct sentence pairs from ``src`` to ``tgt``, split 80/10/10.

    ``size`` (number, template) combinations are drawn without replacement; ``size // 10`` go to
    ``test``, the next ``size // 10`` to ``valid`` and the rest to ``train``, so no test sentence occurs
    in training. The draw depends only on ``size``, ``seed`` and ``max_number``, not on the languages:
    ``en->fr`` and ``en->de`` with the same arguments share their English sides.
    ``size`` must lie in ``10 .. max_pairs(max_number)`` (47,472 with the default ``max_number=999``).
    """
    check_choice("src", src, LANGUAGES)
    check_choice("tgt", tgt, LANGUAGES)
    if src == tgt:
        raise ValueError(f"src and tgt must be different languages, got src=tgt={src!r}")
    check_range("size", size, 10, max_pairs(max_number))
    combos = [(n, t) for t in range(NUM_TEMPLATES) for n in numbers(max_number)]
    chosen = random.Random(seed).sample(combos, size)
    pairs = [(_sentence(n, t, src), _sentence(n, t, tgt)) for n, t in chosen]
    held_out = size // 10
    return Splits(train=pairs[2 * held_out :], valid=pairs[held_out : 2 * held_out], test=pairs[:held_out])


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id table. Ids 0..3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.

    ``level="word"`` splits on whitespace; ``level="char"`` uses every character, spaces included.
    Build one from training sentences with :meth:`build`.
    """

    tokens: tuple[str, ...]
    level: Literal["word", "char"] = "word"
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    def __post_init__(self) -> None:
        check_choice("level", self.level, LEVELS)
        object.__setattr__(self, "tokens", tuple(self.tokens))  # a list is accepted too
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"tokens must start with the special tokens {SPECIALS}, got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("tokens must not repeat")
        object.__setattr__(self, "_ids", {token: i for i, token in enumerate(self.tokens)})

    @classmethod
    def build(cls, sentences: Iterable[str], level: Literal["word", "char"] = "word", min_freq: int = 1) -> Vocabulary:
        """Every token seen at least ``min_freq`` times, most frequent first (ties alphabetical)."""
        check_choice("level", level, LEVELS)
        if min_freq < 1:
            raise ValueError(f"min_freq={min_freq!r} is out of range; expected min_freq >= 1")
        counts = Counter(token for text in sentences for token in _split(text, level))
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(tokens=SPECIALS + tuple(t for t in kept if t not in SPECIALS), level=level)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, add_bos_eos: bool = True) -> list[int]:
        """Ids of the tokens of ``text``; unseen tokens become ``<unk>``."""
        ids = [self._ids.get(token, self.unk_id) for token in _split(text, self.level)]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> str:
        """The text of ``ids`` (a list or a 1-D tensor).

        With ``strip_special``, decoding stops at the first ``<eos>`` and drops ``<pad>`` and ``<bos>``,
        which is what a model's output needs; ``<unk>`` is kept, as a visible gap.
        """
        tokens = []
        for i in (int(i) for i in ids):
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is out of range; the vocabulary has {len(self.tokens)} tokens")
            if strip_special and i == self.eos_id:
                break
            if not (strip_special and i in (self.pad_id, self.bos_id)):
                tokens.append(self.tokens[i])
        return (" " if self.level == "word" else "").join(tokens)


def _split(text: str, level: str) -> list[str]:
    return text.split() if level == "word" else list(text)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into a batch.

    Returns ``ids`` of shape ``(B, T)`` (``T`` the longest length, long) and ``lengths`` of shape
    ``(B,)`` (long).
    """
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = int(lengths.max()) if len(sequences) else 0
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths
