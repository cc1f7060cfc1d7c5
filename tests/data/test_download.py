"""The opt-in downloader, exercised offline through file:// URLs to fixtures made in tmp_path."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

from reprobook.data import download, images
from reprobook.data.download import (
    ALLOW_ENV,
    DATA_ENV,
    REGISTRY,
    ChecksumError,
    DownloadNotAllowedError,
    Resource,
    cache_dir,
    extract,
    fetch,
    fetch_dataset,
    sha256_file,
    write_atomically,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder selected through ``REPROBOOK_DATA``, with no download consent."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(DATA_ENV, str(folder))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    return folder


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "remote" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(b"reprobook test payload\n" * 100)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    assert cache_dir() == tmp_path / "data"
    monkeypatch.delenv(DATA_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "reprobook"


def test_write_atomically_publishes_whole_files_and_cleans_up_failures(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "prepared.json"
    write_atomically(target, lambda partial: partial.write_text("first"))
    assert target.read_text() == "first" and _files(tmp_path) == [target]

    def fail(partial: Path) -> None:
        partial.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fail)
    assert target.read_text() == "first" and _files(tmp_path) == [target]  # old file intact, no temporary left


def test_fetch_downloads_verifies_and_then_uses_the_cache(cache: Path, source: Path) -> None:
    digest = sha256_file(source)
    path = fetch(source.as_uri(), "payload.bin", digest, download=True)
    assert path == cache / "payload.bin"
    assert path.read_bytes() == source.read_bytes()
    assert _files(cache) == [path]  # no .part left behind
    source.unlink()  # the "server" is gone: a second fetch must not need it, nor consent
    assert fetch(source.as_uri(), "payload.bin", digest) == path


def test_wrong_checksum_raises_and_keeps_nothing(cache: Path, source: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=f"expected sha256 {wrong}, got {sha256_file(source)}"):
        fetch(source.as_uri(), "payload.bin", wrong, download=True)
    assert _files(cache) == []


def test_unpinned_file_warns_with_its_digest(cache: Path, source: Path) -> None:
    with pytest.warns(UserWarning, match=f"unverified.*sha256={sha256_file(source)}"):
        path = fetch(source.as_uri(), "payload.bin", None, download=True)
    assert path.read_bytes() == source.read_bytes()


def test_refuses_to_download_without_consent(cache: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sha256_file(source)
    expected = rf"not in the cache.*\(2\.3 MB\).*download=True.*{ALLOW_ENV}=1"
    with pytest.raises(DownloadNotAllowedError, match=expected):
        fetch(source.as_uri(), "payload.bin", digest, size=2_300_000)
    assert _files(cache) == []
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert fetch(source.as_uri(), "payload.bin", digest).read_bytes() == source.read_bytes()


def test_corrupt_cached_file_is_replaced_only_with_consent(cache: Path, source: Path) -> None:
    digest = sha256_file(source)
    cache.mkdir()
    (cache / "payload.bin").write_bytes(b"truncated")
    with pytest.raises(DownloadNotAllowedError, match=f"corrupt.*expected {digest}"):
        fetch(source.as_uri(), "payload.bin", digest)
    path = fetch(source.as_uri(), "payload.bin", digest, download=True)
    assert path.read_bytes() == source.read_bytes()


def test_failed_download_leaves_no_partial_file(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        fetch((tmp_path / "missing.bin").as_uri(), "missing.bin", "0" * 64, download=True)
    assert _files(cache) == []


def test_extract_zip_once_and_atomically(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bundle/a.txt", "alpha")
        zf.writestr("bundle/sub/b.txt", "beta")
    dest = extract(archive)
    assert dest == tmp_path / "bundle"
    assert (dest / "bundle" / "sub" / "b.txt").read_text() == "beta"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    archive.unlink()
    assert extract(archive) == dest  # already extracted: the archive is not read again


def test_extract_tar_gz(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"gamma"
        info = tarfile.TarInfo("c.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert (extract(archive, tmp_path / "out") / "c.txt").read_bytes() == b"gamma"


def test_extract_refuses_members_outside_the_destination(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", "gotcha")
    with pytest.raises(ValueError, match="outside the destination"):
        extract(archive)
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]

    tar_archive = tmp_path / "link.tar"
    with tarfile.open(tar_archive, "w") as tf:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(ValueError, match="link or device"):
        extract(tar_archive)


def test_extract_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a zip or tar file"):
        extract(tmp_path / "notes.txt")


UNVERIFIED = {"iwslt14"}
"""Entries that may lack a checksum: each says in download.py where we looked for one."""


def test_registry_checksums_are_well_formed() -> None:
    assert {"div2k_train_hr", "div2k_valid_hr", "set5", "set14", "kodak"} <= set(REGISTRY)
    assert {f"div2k_{split}_lr_x{s}" for split in ("train", "valid") for s in (2, 3, 4)} <= set(REGISTRY)
    for name, resources in REGISTRY.items():
        assert resources, name
        assert len({r.filename for r in resources}) == len(resources), name
        for resource in resources:
            assert resource.url.startswith("https://"), resource
            assert resource.url.endswith("/" + resource.filename), resource
            if name in UNVERIFIED:  # no checksum or size was ever published for these
                assert resource.sha256 is None and resource.size is None, resource
                continue
            assert resource.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", resource.sha256), resource
            assert resource.size is not None and resource.size > 0, resource
    assert [r.filename for r in REGISTRY["kodak"]] == [f"kodim{i:02d}.png" for i in range(1, 25)]


def test_fetch_dataset_rejects_unknown_names(cache: Path) -> None:
    with pytest.raises(ValueError, match=r"name='set6'.*'set5'"):
        fetch_dataset("set6")


def _write_pngs(folder: Path, names: list[str], seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(names):
        image = torch.randint(0, 256, (3, 6 + i, 8), dtype=torch.uint8, generator=generator)
        write_png(image, str(folder / name))
        written.append(image.float() / 255)
    return written


def test_set5_loader_end_to_end_from_a_local_zip(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _write_pngs(tmp_path / "src" / "Set5", ["bird.png", "baby.png"], seed=0)
    archive = tmp_path / "Set5.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for png in sorted((tmp_path / "src" / "Set5").iterdir()):
            zf.write(png, f"Set5/{png.name}")
    entry = Resource(archive.as_uri(), "Set5.zip", sha256_file(archive), archive.stat().st_size)
    monkeypatch.setitem(download.REGISTRY, "set5", (entry,))

    with pytest.raises(DownloadNotAllowedError, match=r"'set5'.*1 missing file\(s\), 0\.0 MB"):
        images.load_set5()
    loaded = images.load_set5(download=True)
    assert [p.name for p in loaded.paths] == ["baby.png", "bird.png"]  # sorted, not archive order
    torch.testing.assert_close(loaded[0], expected[1])
    torch.testing.assert_close(loaded[1], expected[0])

    archive.unlink()
    (cache / "set5" / "Set5.zip").unlink()
    again = images.load_set5()  # extracted images are reused: no archive, no consent needed
    torch.testing.assert_close(again[0], expected[1])


def test_kodak_loader_keeps_registry_order(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["kodim02.png", "kodim01.png"]
    expected = _write_pngs(tmp_path / "src", names, seed=1)
    entries = tuple(Resource((tmp_path / "src" / n).as_uri(), n, sha256_file(tmp_path / "src" / n)) for n in names)
    monkeypatch.setitem(download.REGISTRY, "kodak", entries)
    monkeypatch.setenv(ALLOW_ENV, "1")
    loaded = images.load_kodak()
    assert [p.name for p in loaded.paths] == names
    for got, want in zip(loaded, expected):
        torch.testing.assert_close(got, want)

    monkeypatch.delenv(ALLOW_ENV)
    assert len(images.load_kodak()) == 2  # cached and verified: no consent needed
    (cache / "kodak" / "kodim01.png").write_bytes(b"not a png")
    with pytest.raises(DownloadNotAllowedError, match="kodim01.png is corrupt"):
        images.load_kodak()


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # more than one 1 MiB chunk
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == _sha(data)
