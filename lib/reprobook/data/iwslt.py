"""IWSLT14 German->English (TED talks), prepared like fairseq's recipe: the real corpus behind the MAT paper.

An opt-in download (:mod:`reprobook.data.download`, registry entry ``"iwslt14"``): the archive
``de-en.tgz`` that fairseq's ``examples/translation/prepare-iwslt14.sh`` fetches. The preparation follows
that script step by step:

* **train**: ``train.tags.de-en.{de,en}`` without the metadata lines (``<url>``, ``<talkid>``,
  ``<keywords>``, and any other line that starts with a tag); ``<title>`` and ``<description>`` lose their
  tags but stay, as in the script. Pairs are dropped when a side is empty or longer than 175 tokens, or when
  one side has more than 1.5 times the tokens of the other (Moses' ``clean-corpus-n.perl -ratio 1.5 1 175``).
* **valid**: every 23rd cleaned training pair (lines 23, 46, ...), taken out of train.
* **test**: the ``<seg>`` lines of ``IWSLT14.TED.dev2010``, ``IWSLT14.TEDX.dev2012``, ``IWSLT14.TED.tst2010``,
  ``tst2011`` and ``tst2012``, in that order, with ``’`` written ``'``; not length-filtered.

Everything is lowercased. One difference matters: fairseq tokenises with the Moses tokenizer and then applies
a 10k joint BPE; here a regular expression splits punctuation off words (``"don't"`` and ``"e-mail"`` stay
whole) and the vocabulary is word-level. Sentence counts come out close to fairseq's (160,239 / 7,283 / 6,750),
but BLEU on these tokens is **not comparable** to the numbers in papers that use the fairseq pipeline.

The prepared splits are cached as JSON in ``cache_dir()/text/``, so a later call needs neither the archive
nor the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from reprobook.data import download as downloads
from reprobook.data.text import Splits

CACHE_VERSION = "iwslt14-1"
"""Part of the cache key: bump it when the preparation changes."""

MAX_TOKENS = 175
MAX_RATIO = 1.5
VALID_EVERY = 23
TEST_SETS = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")

_TOKEN = re.compile(r"\w+(?:['-]\w+)*|[^\w\s]")
_KEPT_TAGS = re.compile(r"</?(?:title|description)>")
_SEGMENT = re.compile(r'<seg id="\d*">\s*(.*?)\s*</seg>')


def tokenize(text: str) -> str:
    """Lowercase ``text`` and split punctuation off words; tokens joined by single spaces."""
    return " ".join(_TOKEN.findall(text.lower()))


def _folder(root: Path) -> Path:
    """The folder holding ``train.tags.de-en.de``: ``root`` or ``root/de-en`` (the archive's layout)."""
    for folder in (root, root / "de-en"):
        if (folder / "train.tags.de-en.de").is_file():
            return folder
    raise FileNotFoundError(f"{root} has no train.tags.de-en.de; expected the layout of IWSLT14's de-en.tgz")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the IWSLT14 de-en archive has it")
    return path.read_text(encoding="utf-8").splitlines()


def _paired(de: list[str], en: list[str], source: Path) -> list[tuple[str, str]]:
    if len(de) != len(en):
        raise ValueError(f"{source}: {len(de)} German but {len(en)} English sentences; the sides must align")
    return list(zip(de, en))


def _train_side(path: Path) -> list[str]:
    """Sentences of a ``train.tags`` file: metadata lines out, title and description tags stripped."""
    lines = (_KEPT_TAGS.sub("", line).strip() for line in _read_lines(path))
    return [tokenize(line) for line in lines if not line.startswith("<")]


def _keep(de: str, en: str) -> bool:
    """Moses' ``clean-corpus-n.perl -ratio 1.5 1 175`` on token counts."""
    n_de, n_en = len(de.split()), len(en.split())
    return 1 <= n_de <= MAX_TOKENS and 1 <= n_en <= MAX_TOKENS and max(n_de / n_en, n_en / n_de) <= MAX_RATIO


def _test_side(path: Path) -> list[str]:
    """The ``<seg>`` sentences of an IWSLT xml file."""
    return [tokenize(m.group(1).replace("’", "'")) for m in map(_SEGMENT.search, _read_lines(path)) if m]


def prepare(root: str | os.PathLike[str]) -> Splits:
    """Train/valid/test ``(de, en)`` pairs from an extracted ``de-en.tgz`` (``root`` or ``root/de-en``)."""
    folder = _folder(Path(root))
    train_de = folder / "train.tags.de-en.de"
    cleaned = [
        p for p in _paired(_train_side(train_de), _train_side(folder / "train.tags.de-en.en"), train_de) if _keep(*p)
    ]
    test: list[tuple[str, str]] = []
    for name in TEST_SETS:
        de, en = (folder / f"IWSLT14.{name}.de-en.{lang}.xml" for lang in ("de", "en"))
        test += _paired(_test_side(de), _test_side(en), de)
    return Splits(
        train=[p for i, p in enumerate(cleaned, start=1) if i % VALID_EVERY],
        valid=[p for i, p in enumerate(cleaned, start=1) if i % VALID_EVERY == 0],
        test=test,
    )


def _cache_path(folder: Path) -> Path:
    resource = downloads.REGISTRY["iwslt14"][0]
    key = {"version": CACHE_VERSION, "source": resource.sha256 or resource.url}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / "text" / f"iwslt14-de-en-{digest}.json"


def iwslt14_corpus(download: bool = False, max_pairs: int | None = None) -> Splits:
    """IWSLT14 de->en as lowercased, tokenised ``(german, english)`` pairs, prepared as the module docstring says.

    The archive is fetched into ``cache_dir()/iwslt14/`` only with consent (``download=True`` or
    ``REPROBOOK_ALLOW_DOWNLOAD=1``, else :class:`~reprobook.data.download.DownloadNotAllowedError`); the
    prepared splits are cached in ``cache_dir()/text/``, keyed by :data:`CACHE_VERSION` and the archive's
    pinned checksum (its URL while unpinned). ``max_pairs`` keeps the first ``max_pairs`` pairs of each split
    (all if None), for quick runs.
    """
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1):
        raise ValueError(f"max_pairs={max_pairs!r} is not valid; expected a positive integer or None")
    folder = downloads.cache_dir()
    path = _cache_path(folder)
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        splits = Splits(**{name: [(de, en) for de, en in stored[name]] for name in ("train", "valid", "test")})
    else:
        (root,) = downloads.fetch_dataset("iwslt14", download=download, cache=folder)
        splits = prepare(root)
        text = json.dumps(vars(splits), ensure_ascii=False)
        downloads.write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))
    if max_pairs is None:
        return splits
    return Splits(splits.train[:max_pairs], splits.valid[:max_pairs], splits.test[:max_pairs])
