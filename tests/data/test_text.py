from __future__ import annotations

import pytest
import torch

from reprobook.data.text import (
    LANGUAGES,
    NUM_TEMPLATES,
    Vocabulary,
    max_pairs,
    numbers,
    pad_batch,
    parallel_corpus,
    sentence,
)


def test_split_sizes_and_disjoint() -> None:
    splits = parallel_corpus("en", "fr", size=1_000, seed=0)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (800, 100, 100)
    train_src = {s for s, _ in splits.train}
    assert not train_src & {s for s, _ in splits.valid}
    assert not train_src & {s for s, _ in splits.test}
    assert len(set(splits.train + splits.valid + splits.test)) == 1_000


def test_deterministic_for_a_seed_and_shared_across_languages() -> None:
    a = parallel_corpus("en", "de", size=200, seed=3)
    assert a == parallel_corpus("en", "de", size=200, seed=3)
    assert a.train != parallel_corpus("en", "de", size=200, seed=4).train
    # Same draw, other target language: the English sides agree.
    b = parallel_corpus("en", "es", size=200, seed=3)
    assert [s for s, _ in a.test] == [s for s, _ in b.test]


def test_whole_corpus_has_every_pair_once() -> None:
    assert max_pairs() == 989 * NUM_TEMPLATES  # 2..999 without 101, 201, ..., 901
    splits = parallel_corpus("fr", "es", size=max_pairs(), seed=0)
    pairs = splits.train + splits.valid + splits.test
    assert len({s for s, _ in pairs}) == len({t for _, t in pairs}) == max_pairs()


@pytest.mark.parametrize(
    ("n", "template", "expected"),
    [
        (21, 0, ("twenty-one cats", "vingt et un chats", "veintiún gatos", "einundzwanzig Katzen", "ventun gatti")),
        (
            31,
            10,  # frame 1 ("I have"), noun 2 (books)
            (
                "I have thirty-one books",
                "j'ai trente et un livres",
                "tengo treinta y un libros",
                "ich habe einunddreißig Bücher",
                "ho trentun libri",
            ),
        ),
        (
            280,
            36,  # frame 4 ("there are"), noun 4 (trees)
            (
                "there are two hundred and eighty trees",
                "il y a deux cent quatre-vingts arbres",
                "hay doscientos ochenta árboles",
                "es gibt zweihundertachtzig Bäume",
                "ci sono duecentottanta alberi",
            ),
        ),
        (100, 3, ("one hundred birds", "cent oiseaux", "cien pájaros", "einhundert Vögel", "cento uccelli")),
    ],
)
def test_known_sentences(n: int, template: int, expected: tuple[str, ...]) -> None:
    assert tuple(sentence(n, template, lang) for lang in LANGUAGES) == expected


def test_spanish_apocope_everywhere() -> None:
    splits = parallel_corpus("en", "es", size=max_pairs(), seed=0)
    spanish = [t for _, t in splits.train + splits.valid + splits.test]
    assert not [t for t in spanish if " uno " in f" {t} " or "veintiuno" in t]
    assert any("veintiún" in t for t in spanish) and any(" y un " in t for t in spanish)


def test_languages_keep_their_order() -> None:
    # Columns of the templates follow LANGUAGES: a new language goes last.
    assert LANGUAGES[:4] == ("en", "fr", "es", "de") and "it" in LANGUAGES


@pytest.mark.parametrize(
    ("n", "template", "expected"),
    [
        (2, 9, "ho due cani"),  # template = 8 * frame + noun: frame 1 ("ho"), noun 1 (cani)
        (18, 23, "abbiamo diciotto battelli"),  # frame 2, noun 7
        (28, 27, "vedo ventotto uccelli"),  # frame 3, noun 3
        (41, 45, "vogliono quarantun cavalli"),  # frame 5, noun 5: -uno drops its o
        (103, 38, "ci sono centotré treni"),
        (118, 0, "centodiciotto gatti"),  # num2words writes "centodicotto"
        (123, 1, "centoventitré cani"),  # num2words writes "centoventitre"
        (181, 2, "centottantun libri"),
        (888, 4, "ottocentottantotto alberi"),
        (921, 36, "ci sono novecentoventun alberi"),
    ],
)
def test_italian_sentences(n: int, template: int, expected: str) -> None:
    assert sentence(n, template, "it") == expected


def test_italian_spelling_everywhere() -> None:
    italian = [sentence(n, t, "it") for t in range(NUM_TEMPLATES) for n in numbers()]
    assert len(set(italian)) == max_pairs()  # every pair distinct
    words = {word for t in italian for word in t.split()}
    assert not [w for w in words if w.endswith(("uno", "dicotto")) or (w.endswith("tre") and w != "tre")]
    assert {"ventun", "trentun", "centoventitré", "duecentodiciotto", "novecentonovantanove"} <= words
    # Italian pairs are drawn like any other: same English side as en->de, mirrored by it->en.
    splits = parallel_corpus("en", "it", size=200, seed=3)
    assert [s for s, _ in splits.test] == [s for s, _ in parallel_corpus("en", "de", size=200, seed=3).test]
    assert parallel_corpus("it", "en", size=200, seed=3).test == [(t, s) for s, t in splits.test]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"src='xx'.*'en', 'fr', 'es', 'de'"):
        parallel_corpus("xx", "fr")
    with pytest.raises(ValueError, match=r"tgt='pt'"):
        parallel_corpus("en", "pt")
    with pytest.raises(ValueError, match="different"):
        parallel_corpus("de", "de")
    with pytest.raises(ValueError, match=str(max_pairs(50))):
        parallel_corpus("en", "fr", size=max_pairs(50) + 1, max_number=50)
    with pytest.raises(ValueError, match="n=101"):
        sentence(101, 0, "de")


def test_max_number_limits_the_numbers() -> None:
    splits = parallel_corpus("en", "fr", size=max_pairs(20), max_number=20)
    english = " ".join(s for s, _ in splits.train + splits.valid + splits.test)
    assert "twenty" in english and "twenty-" not in english and "hundred" not in english


@pytest.mark.parametrize("level", ["word", "char"])
def test_vocabulary_round_trip(level: str) -> None:
    splits = parallel_corpus("en", "de", size=500, seed=0)
    vocab = Vocabulary.build((t for _, t in splits.train), level=level)  # type: ignore[arg-type]
    assert vocab.tokens[:4] == ("<pad>", "<bos>", "<eos>", "<unk>") and vocab.pad_id == 0
    for _, text in splits.train[:50]:
        ids = vocab.encode(text)
        assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        assert vocab.decode(ids) == text
        assert vocab.encode(text, add_bos_eos=False) == ids[1:-1]


def test_vocabulary_levels_min_freq_and_unknowns() -> None:
    sentences = ["a b b", "b c"]
    words = Vocabulary.build(sentences, level="word", min_freq=2)
    assert words.tokens == ("<pad>", "<bos>", "<eos>", "<unk>", "b")
    assert words.encode("a b z", add_bos_eos=False) == [3, 4, 3]
    chars = Vocabulary.build(sentences, level="char")
    assert chars.tokens[4:] == (" ", "b", "a", "c")  # by frequency, ties alphabetical
    assert len(chars) == 8 and chars.decode(chars.encode("ab c")) == "ab c"


def test_decode_stops_at_eos_and_strips_specials() -> None:
    vocab = Vocabulary.build(["x y"])
    x, y = vocab.encode("x y", add_bos_eos=False)
    ids = [vocab.bos_id, x, vocab.pad_id, y, vocab.eos_id, x, vocab.pad_id]
    assert vocab.decode(ids) == "x y"
    assert vocab.decode(torch.tensor(ids)) == "x y"
    assert vocab.decode(ids, strip_special=False) == "<bos> x <pad> y <eos> x <pad>"
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([len(vocab)])


def test_bad_vocabulary() -> None:
    with pytest.raises(ValueError, match="level='byte'"):
        Vocabulary.build(["a"], level="byte")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build(["a"], min_freq=0)
    with pytest.raises(ValueError, match="special"):
        Vocabulary(tokens=("a", "b"))


def test_pad_batch() -> None:
    ids, lengths = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    empty, no_lengths = pad_batch([])
    assert empty.shape == (0, 0) and no_lengths.shape == (0,)
