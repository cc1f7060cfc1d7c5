"""IWSLT14 de->en preparation, offline: a tiny de-en.tgz with the real file names and formats, made in tmp_path and
served through a file:// URL (never a real download)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from reprobook.data import download
from reprobook.data.download import ALLOW_ENV, DATA_ENV, ChecksumError, DownloadNotAllowedError, Resource, sha256_file
from reprobook.data.iwslt import TEST_SETS, iwslt14_corpus, prepare, tokenize
from reprobook.mat import MATConfig, load_data

HEADER = [
    "<url>http://www.ted.com/talks/lang/{lang}/example.html</url>",
    "<keywords>talks, science</keywords>",
    "<speaker>Jane Doe</speaker>",
    "<talkid>1</talkid>",
    "<title>Title {n}</title>",
    "<description>TED Talk Subtitles and Transcript: talk {n}</description>",
    '<reviewer href="http://www.ted.com/profiles/1">Rev</reviewer>',
    '<translator href="http://www.ted.com/profiles/2">Tra</translator>',
]
# 48 numbered pairs, then pairs the length filter removes: a side of 176 tokens, a ratio of 2, an empty side.
SENTENCES = [(f"Satz Nummer {i}, gut.", f"Sentence number {i}, good.") for i in range(48)]
DROPPED = [(" ".join(["wort"] * 176), " ".join(["word"] * 176)), ("Ja ja ja ja.", "Yes."), ("", "Nothing.")]


def _train_file(lang: str) -> str:
    side = 0 if lang == "de" else 1
    lines = [h.format(lang=lang, n=0) for h in HEADER]
    lines += [s[side] for s in SENTENCES[:30] + DROPPED]
    lines += [h.format(lang=lang, n=1) for h in HEADER]  # a second talk
    lines += [s[side] for s in SENTENCES[30:]]
    return "\n".join(lines) + "\n"


def _label(name: str) -> str:
    """``TED.dev2010`` -> ``TED_dev2010``: one token, so each test sentence shows which file it came from."""
    return name.replace(".", "_")


def _xml(lang: str, name: str) -> str:
    """An IWSLT evaluation file: header lines, then one <seg> per sentence."""
    words = ("Prüfung", "Test") if lang == "de" else ("Test", "Check")
    segs = [f'<seg id="{i}"> {words[0]} {_label(name)} {i}: It’s Ok. </seg>' for i in (1, 2)]
    return (
        "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                "<mteval>",
                f'<srcset setid="{name}" srclang="{lang}">',
                '<doc docid="1" genre="lectures">',
                "<url>http://www.ted.com/talks/x.html</url>",
                f"<description>TED Talk Subtitles and Transcript: {name}</description>",
                "<talkid>1</talkid>",
                f"<title>{name}</title>",
                *segs,
                "</doc>",
                "</srcset>",
                "</mteval>",
            ]
        )
        + "\n"
    )


def _make_dataset(folder: Path) -> None:
    """``de-en/``: train.tags.de-en.{de,en} and the IWSLT14.TED*.xml files, as in the real archive."""
    folder.mkdir(parents=True)
    for lang in ("de", "en"):
        (folder / f"train.tags.de-en.{lang}").write_text(_train_file(lang), encoding="utf-8")
        for name in (*TEST_SETS, "TED.dev2012-unused"):
            (folder / f"IWSLT14.{name}.de-en.{lang}.xml").write_text(_xml(lang, name), encoding="utf-8")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote")
    _make_dataset(folder / "de-en")
    path = folder / "de-en.tgz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder / "de-en", arcname="de-en")
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: Path) -> Path:
    """An empty cache through ``REPROBOOK_DATA``, no consent, and the registry pointing at the local archive."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(DATA_ENV, str(folder))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.setitem(download.REGISTRY, "iwslt14", (Resource(archive.as_uri(), "de-en.tgz", sha256_file(archive)),))
    return folder


def test_registry_names_fairseqs_archive_unpinned() -> None:
    (resource,) = download.REGISTRY["iwslt14"]
    assert resource.url == "https://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
    assert resource.filename == "de-en.tgz" and resource.sha256 is None  # no published checksum found


def test_tokenize_lowercases_and_splits_punctuation() -> None:
    assert tokenize("Don't stop, E-Mail me (now)!") == "don't stop , e-mail me ( now ) !"
    assert tokenize("  Größe:  3  ") == "größe : 3"


def test_corpus_follows_the_fairseq_recipe(cache: Path) -> None:
    splits = iwslt14_corpus(download=True)
    assert (cache / "iwslt14" / "de-en" / "de-en" / "train.tags.de-en.de").is_file()
    # title and description lose their tags but stay, as in fairseq's script; DROPPED fails the length filter
    talk = [[(f"title {n}",) * 2, (f"ted talk subtitles and transcript : talk {n}",) * 2] for n in (0, 1)]
    numbered = [(tokenize(de), tokenize(en)) for de, en in SENTENCES]
    cleaned = [*talk[0], *numbered[:30], *talk[1], *numbered[30:]]
    assert splits.valid == cleaned[22::23]  # lines 23 and 46
    assert splits.train == [p for i, p in enumerate(cleaned, start=1) if i % 23]
    everything = splits.train + splits.valid
    assert not any("<" in de or "<" in en or "jane" in en or "rev" in en for de, en in everything)
    assert all(de == de.lower() and en == en.lower() for de, en in everything)
    assert ("satz nummer 5 , gut .", "sentence number 5 , good .") in splits.train
    assert [de for de, _ in splits.test] == [
        f"prüfung {_label(name).lower()} {i} : it's ok ." for name in TEST_SETS for i in (1, 2)
    ]  # the five sets in fairseq's order, ’ written ', and not the unused one
    assert splits.test[0][1] == "test ted_dev2010 1 : it's ok ."


def test_prepare_reads_an_extracted_folder(tmp_path: Path) -> None:
    _make_dataset(tmp_path / "de-en")
    assert prepare(tmp_path) == prepare(tmp_path / "de-en")
    with pytest.raises(FileNotFoundError, match="train.tags.de-en.de"):
        prepare(tmp_path / "nowhere")
    (tmp_path / "de-en" / "IWSLT14.TED.tst2011.de-en.en.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"tst2011\.de-en\.en\.xml is missing"):
        prepare(tmp_path)
    (tmp_path / "de-en" / "train.tags.de-en.en").write_text("Only one line.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="German but 1 English"):
        prepare(tmp_path)


def test_second_call_uses_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = iwslt14_corpus(download=True)
    (prepared,) = (cache / "text").glob("iwslt14-de-en-*.json")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the prepared corpus should come from the cache, not a download")

    monkeypatch.setattr(download, "_download", fail)
    monkeypatch.setattr(download, "fetch_dataset", fail)
    assert iwslt14_corpus() == first  # no consent needed either
    small = iwslt14_corpus(max_pairs=3)
    assert (small.train, small.valid, small.test) == (first.train[:3], first.valid[:3], first.test[:3])
    assert prepared.is_file()


def test_refuses_to_download_without_consent(cache: Path) -> None:
    with pytest.raises(DownloadNotAllowedError, match=rf"'iwslt14'.*size not published.*download=True.*{ALLOW_ENV}=1"):
        iwslt14_corpus()
    assert not cache.exists() or not any(cache.rglob("*.*"))


def test_checksum_mismatch_keeps_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    monkeypatch.setitem(download.REGISTRY, "iwslt14", (Resource(archive.as_uri(), "de-en.tgz", "0" * 64),))
    with pytest.raises(ChecksumError, match="expected sha256 0{64}"):
        iwslt14_corpus(download=True)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_unpinned_archive_warns_with_its_digest(cache: Path, monkeypatch: pytest.MonkeyPatch, archive: Path) -> None:
    monkeypatch.setitem(download.REGISTRY, "iwslt14", (Resource(archive.as_uri(), "de-en.tgz", None),))
    with pytest.warns(UserWarning, match=f"sha256={sha256_file(archive)}"):
        assert iwslt14_corpus(download=True, max_pairs=1).test == [iwslt14_corpus().test[0]]


@pytest.mark.parametrize("max_pairs", [0, -1, 2.5, True, "3"])
def test_bad_max_pairs(max_pairs: object) -> None:
    with pytest.raises(ValueError, match="max_pairs"):
        iwslt14_corpus(max_pairs=max_pairs)  # type: ignore[arg-type]


def test_mat_config_checks_the_corpus() -> None:
    with pytest.raises(ValueError, match=r"corpus='bogus'.*'numbers', 'iwslt14'"):
        MATConfig(corpus="bogus", num_steps=10)


def test_mat_load_data_reads_iwslt14_with_word_vocabularies(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")
    data = load_data(MATConfig(corpus="iwslt14", num_steps=10, src_level="char", vocab_min_freq=2))
    assert data.train == iwslt14_corpus().train
    assert data.src_vocab.level == data.tgt_vocab.level == "word"  # the level fields do not apply
    # "satz" and "nummer" occur in every training pair; each number only once, so min_freq=2 drops them
    assert {"satz", "nummer"} <= set(data.src_vocab.tokens) and "7" not in data.src_vocab.tokens
