"""Opt-in downloads of real datasets into a local cache, verified by SHA-256.

The book never needs the network: every chapter trains on the photos shipped inside
scikit-image and scikit-learn (:mod:`reprobook.data.images`) or speech synthesised by espeak-ng. A
reader who wants the datasets the papers used (DIV2K, Set5, Set14, Kodak, LJSpeech, IWSLT14) opts in, and
only then does anything leave the machine:

* pass ``download=True`` to a loader or to :func:`fetch`, or
* set the environment variable ``REPROBOOK_ALLOW_DOWNLOAD=1``.

Without either, a file that is not already in the cache raises :class:`DownloadNotAllowedError`,
so the default build can never download by accident.

Files land in :func:`cache_dir` (``$REPROBOOK_DATA``, else ``~/.cache/reprobook``), one folder per
dataset. A download is written to ``<name>.part``, hashed while it streams, and renamed into place
only when its SHA-256 matches; a mismatch deletes the partial file and raises
:class:`ChecksumError` showing the expected and the received digest. Archives are extracted the
same way: into a temporary folder, renamed when complete.

:data:`REGISTRY` maps each dataset to its files and their published checksums; the comment above
each entry says where the checksum was published. An entry with ``sha256=None`` is *unverified*:
its first download warns and prints the digest it got, so the reader can pin it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from reprobook._validate import check_choice

DATA_ENV = "REPROBOOK_DATA"
ALLOW_ENV = "REPROBOOK_ALLOW_DOWNLOAD"

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the SHA-256 the registry promises."""


class DownloadNotAllowedError(RuntimeError):
    """A file must be downloaded but the reader has not opted in."""


@dataclass(frozen=True)
class Resource:
    """One downloadable file.

    ``sha256=None`` means unverified: the first download warns with the digest it got.
    ``size`` (bytes) is the published size, shown before a download so the reader knows what
    opting in costs.
    """

    url: str
    filename: str
    sha256: str | None
    size: int | None = None


def _div2k(filename: str, size: int, sha256: str) -> tuple[Resource, ...]:
    return (Resource(f"https://data.vision.ee.ethz.ch/cvl/DIV2K/{filename}", filename, sha256, size),)


def _kodak(index: int, size: int, sha256: str) -> Resource:
    filename = f"kodim{index:02d}.png"
    return Resource(f"https://r0k.us/graphics/kodak/kodak/{filename}", filename, sha256, size)


REGISTRY: dict[str, tuple[Resource, ...]] = {
    # DIV2K (Agustsson & Timofte, NTIRE 2017). Sizes and SHA-256 as published by TensorFlow
    # Datasets in tensorflow/datasets: tensorflow_datasets/datasets/div2k/checksums.tsv.
    "div2k_train_hr": _div2k(
        "DIV2K_train_HR.zip", 3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"
    ),
    "div2k_valid_hr": _div2k(
        "DIV2K_valid_HR.zip", 448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"
    ),
    "div2k_train_lr_x2": _div2k(
        "DIV2K_train_LR_bicubic_X2.zip", 925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"
    ),
    "div2k_train_lr_x3": _div2k(
        "DIV2K_train_LR_bicubic_X3.zip", 427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a"
    ),
    "div2k_train_lr_x4": _div2k(
        "DIV2K_train_LR_bicubic_X4.zip", 246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a"
    ),
    "div2k_valid_lr_x2": _div2k(
        "DIV2K_valid_LR_bicubic_X2.zip", 117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"
    ),
    "div2k_valid_lr_x3": _div2k(
        "DIV2K_valid_LR_bicubic_X3.zip", 54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3"
    ),
    "div2k_valid_lr_x4": _div2k(
        "DIV2K_valid_LR_bicubic_X4.zip", 31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"
    ),
    # Set5 (Bevilacqua et al., BMVC 2012) and Set14 (Zeyde et al., 2010), HR images only, as
    # repackaged in the GitHub release 0.0.1rc of HedgehogCode/tensorflow-datasets-bw; size and
    # SHA-256 from that repository's tensorflow_datasets_bw/set5/checksums.tsv and
    # tensorflow_datasets_bw/set14/checksums.tsv.
    "set5": (
        Resource(
            "https://github.com/HedgehogCode/tensorflow-datasets-bw/releases/download/0.0.1rc/Set5.zip",
            "Set5.zip",
            "1c0703fbea86c216cce1ab8052d8f285f6aa2cecbdb04c323d26b146c03ade75",
            852383,
        ),
    ),
    "set14": (
        Resource(
            "https://github.com/HedgehogCode/tensorflow-datasets-bw/releases/download/0.0.1rc/Set14.zip",
            "Set14.zip",
            "069b4c21d6477281a89710a1b4c740a56859a05207a7c2fb0f7d2a1655bb79ce",
            5096261,
        ),
    ),
    # Kodak Lossless True Color Image Suite, PNGs from r0k.us. Sizes and SHA-256 from
    # HedgehogCode/tensorflow-datasets-bw: tensorflow_datasets_bw/kodak24/checksums.tsv; the same
    # 24 digests appear in several unrelated public repositories.
    "kodak": (
        _kodak(1, 736501, "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd"),
        _kodak(2, 617995, "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd"),
        _kodak(3, 502888, "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db"),
        _kodak(4, 637432, "e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa"),
        _kodak(5, 785610, "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53"),
        _kodak(6, 618959, "363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18"),
        _kodak(7, 566322, "b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4"),
        _kodak(8, 788470, "ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7"),
        _kodak(9, 582899, "6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d"),
        _kodak(10, 593463, "9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23"),
        _kodak(11, 621023, "7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6"),
        _kodak(12, 531024, "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980"),
        _kodak(13, 822712, "bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08"),
        _kodak(14, 692201, "55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e"),
        _kodak(15, 612582, "7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683"),
        _kodak(16, 534247, "a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54"),
        _kodak(17, 602078, "37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b"),
        _kodak(18, 780947, "1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa"),
        _kodak(19, 671476, "b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc"),
        _kodak(20, 492462, "3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a"),
        _kodak(21, 637051, "ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b"),
        _kodak(22, 701970, "1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29"),
        _kodak(23, 557596, "e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf"),
        _kodak(24, 706397, "1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96"),
    ),
    # LJ Speech 1.1 (Ito & Johnson, 2017): 13,100 clips of one reader, 22,050 Hz 16-bit mono WAV plus
    # metadata.csv. Size and SHA-256 as published by TensorFlow Datasets in tensorflow/datasets:
    # tensorflow_datasets/url_checksums/ljspeech.txt; torchaudio pins the same SHA-256 in
    # torchaudio/datasets/ljspeech.py.
    "ljspeech": (
        Resource(
            "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
            "LJSpeech-1.1.tar.bz2",
            "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5",
            2748572632,
        ),
    ),
    # IWSLT 2014 German-English TED talks (Cettolo et al., 2014): the de-en.tgz that fairseq's
    # examples/translation/prepare-iwslt14.sh downloads (its http:// URL, here over https). We found no
    # published SHA-256 or size for this file (searched fairseq, TensorFlow Datasets, HuggingFace and other
    # public repositories), so the entry is unverified: its first download warns with the digest it got.
    "iwslt14": (Resource("https://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz", "de-en.tgz", None),),
}


def cache_dir() -> Path:
    """The download cache: ``$REPROBOOK_DATA`` if set, else ``~/.cache/reprobook``."""
    configured = os.environ.get(DATA_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "reprobook"


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Create ``path`` through ``write(temporary)`` on a fresh file beside it, then rename it into place.

    A concurrent reader never sees half a file, two concurrent writers never share the temporary file, and
    a failed ``write`` leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        write(Path(partial))
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def download_allowed(download: bool = False) -> bool:
    """Whether downloading is allowed: ``download=True`` or ``REPROBOOK_ALLOW_DOWNLOAD=1``."""
    return download or os.environ.get(ALLOW_ENV, "").strip().lower() in {"1", "true", "yes"}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inside(folder: Path, filename: str) -> Path:
    """``folder / filename``, refusing a name that would land outside ``folder`` (``../x``, an absolute path)."""
    target = (folder / filename).resolve()
    if not target.is_relative_to(folder.resolve()) or target == folder.resolve():
        raise ValueError(f"filename={filename!r} must name a file inside the cache folder {folder}")
    return folder / filename


def fetch(
    url: str,
    filename: str,
    sha256: str | None,
    cache: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    size: int | None = None,
) -> Path:
    """Return ``cache/filename``, downloading it from ``url`` first if needed.

    A cached file whose SHA-256 matches (or any cached file when ``sha256`` is None) is returned
    without touching the network. Otherwise the file is downloaded, which requires opting in
    (``download=True`` or ``REPROBOOK_ALLOW_DOWNLOAD=1``; else :class:`DownloadNotAllowedError`).
    ``url`` may be ``https://`` or ``file://``. The download streams into ``filename.part`` and is
    renamed into place only if its SHA-256 equals ``sha256``; on a mismatch the partial file is
    deleted and :class:`ChecksumError` shows both digests. With ``sha256=None`` the file is kept
    and a warning prints the digest it got, so it can be pinned. ``size`` (bytes) only enriches
    the opt-in message.
    """
    folder = Path(cache) if cache is not None else cache_dir()
    target = inside(folder, filename)
    if target.is_file():
        if sha256 is None:
            return target
        got = sha256_file(target)
        if got == sha256:
            return target
        reason = f"the cached {target} is corrupt (sha256 {got}, expected {sha256})"
    else:
        reason = f"{target} is not in the cache"
    if not download_allowed(download):
        amount = f" ({size / 1e6:,.1f} MB)" if size is not None else ""
        raise DownloadNotAllowedError(f"{reason}; downloading it from {url}{amount} {_consent_hint(folder)}")
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        got = _download(url, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if sha256 is None:
        warnings.warn(
            f"{filename} has no pinned checksum, so it is unverified; it downloaded with "
            f"sha256={got}. Pin this value in reprobook.data.download.REGISTRY.",
            stacklevel=2,
        )
    elif got != sha256:
        partial.unlink()
        raise ChecksumError(f"{url} failed verification: expected sha256 {sha256}, got {got}; nothing was kept")
    os.replace(partial, target)
    return target


def _consent_hint(folder: Path) -> str:
    return (
        f"needs your consent: pass download=True or set {ALLOW_ENV}=1 "
        f"(files go to {folder}; set {DATA_ENV} to move the cache)"
    )


def _download(url: str, path: Path) -> str:
    """Stream ``url`` into ``path`` with a progress bar; return its SHA-256."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(path, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name.removesuffix(".part")) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a zip or tar archive that :func:`extract` understands."""
    return str(path).lower().endswith(_ARCHIVE_SUFFIXES)


def extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Extract a zip or tar archive into ``dest`` and return ``dest``.

    ``dest`` defaults to the archive's path without its suffix (``Set5.zip`` -> ``Set5/``). If
    ``dest`` already exists the archive is assumed extracted and left alone: extraction writes to
    a temporary sibling folder and renames it, so ``dest`` only ever appears complete. Members
    that would land outside ``dest`` (absolute paths, ``..``, links, devices) raise ``ValueError``.
    """
    archive = Path(archive)
    if not is_archive(archive):
        raise ValueError(
            f"archive={str(archive)!r} is not a zip or tar file; expected a name ending in {_ARCHIVE_SUFFIXES}"
        )
    dest = _default_dest(archive) if dest is None else Path(dest)
    if dest.exists():
        return dest
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(archive, name)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(archive, member.name)
                    if not (member.isfile() or member.isdir()):
                        raise ValueError(f"{archive} member {member.name!r} is a link or device; refusing to extract")
                tf.extractall(tmp, members=members, filter="data")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _check_member(archive: Path, name: str) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise ValueError(f"{archive} member {name!r} would extract outside the destination; refusing")


def fetch_dataset(name: str, *, download: bool = False, cache: str | os.PathLike[str] | None = None) -> list[Path]:
    """Make every file of the registered dataset ``name`` available; return their local paths.

    Files go to ``cache/name/`` (``cache`` defaults to :func:`cache_dir`). Archives are extracted
    and their folder is returned instead of the archive; once extracted, a later call skips the
    archive (and its slow re-hash) entirely, while plain files are re-verified on every call.
    Downloading anything requires opting in, see :func:`fetch`.
    """
    check_choice("name", name, REGISTRY)
    folder = (Path(cache) if cache is not None else cache_dir()) / name
    missing = [r for r in REGISTRY[name] if not _ready_path(folder, r).exists()]
    if missing and not download_allowed(download):
        known = all(r.size is not None for r in missing)
        amount = f"{sum(r.size or 0 for r in missing) / 1e6:,.1f} MB" if known else "size not published"
        corrupt = [
            r.filename
            for r in missing
            if (folder / r.filename).is_file() and r.sha256 is not None and sha256_file(folder / r.filename) != r.sha256
        ]
        state = f"has corrupt file(s) {corrupt} in the cache" if corrupt else "is not in the cache"
        raise DownloadNotAllowedError(
            f"dataset {name!r} {state}; downloading its {len(missing)} missing file(s), "
            f"{amount}, {_consent_hint(folder)}"
        )
    ready: list[Path] = []
    for resource in REGISTRY[name]:
        path = _ready_path(folder, resource)
        if not (is_archive(resource.filename) and path.is_dir()):  # plain files are re-verified: cheap
            fetched = fetch(
                resource.url, resource.filename, resource.sha256, folder, download=download, size=resource.size
            )
            if is_archive(fetched):
                extract(fetched, path)
        ready.append(path)
    return ready


def _ready_path(folder: Path, resource: Resource) -> Path:
    """Where a resource is usable: the file itself, or for an archive its extracted folder."""
    path = folder / resource.filename
    return _default_dest(path) if is_archive(path) else path


def _default_dest(archive: Path) -> Path:
    """``Set5.zip`` -> ``Set5``, ``x.tar.gz`` -> ``x``."""
    suffix = next(s for s in _ARCHIVE_SUFFIXES if archive.name.lower().endswith(s))
    return archive.with_name(archive.name[: -len(suffix)])
