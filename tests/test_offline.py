"""Nothing reaches the network without consent: every loader runs here with the socket layer blocked and
``REPROBOOK_ALLOW_DOWNLOAD`` unset. It either works offline or refuses with the project's consent error; a socket
error would mean a path that bypasses the gate (a new loader, or a third-party one such as pykeen's)."""

from __future__ import annotations

import socket

import pytest

from reprobook.data import images, kg, text
from reprobook.data.download import ALLOW_ENV, DownloadNotAllowedError
from reprobook.data.iwslt import iwslt14_corpus
from reprobook.data.speech.ljspeech import build_ljspeech_corpus
from reprobook.seek.data import knowledge_graph_from_pykeen


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"a network call without consent: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.setenv("REPROBOOK_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PYSTOW_HOME", str(tmp_path / "pystow"))  # pykeen's cache: empty, so it would download


def test_the_blocker_catches_a_connection():
    with pytest.raises(NetworkUsed):
        socket.create_connection(("example.com", 80))


@pytest.mark.parametrize(
    "load",
    [
        lambda: images.load_set5(),
        lambda: images.load_set14(),
        lambda: images.load_kodak(),
        lambda: images.load_div2k("valid"),
        lambda: iwslt14_corpus(),
        lambda: build_ljspeech_corpus(2),
        lambda: knowledge_graph_from_pykeen("FB15k237"),
    ],
    ids=["set5", "set14", "kodak", "div2k", "iwslt14", "ljspeech", "pykeen-fb15k237"],
)
def test_opt_in_datasets_refuse_without_consent(load):
    with pytest.raises(DownloadNotAllowedError, match=ALLOW_ENV):
        load()


def test_default_data_needs_no_network():
    assert len(images.load_images(images.TRAIN_IMAGES)) > 0
    assert kg.load_kg("umls").num_entities == 135
    assert len(knowledge_graph_from_pykeen("Nations").entities) == 14  # shipped inside pykeen
    assert len(text.parallel_corpus("fr", "en", size=20, seed=0).train) > 0
