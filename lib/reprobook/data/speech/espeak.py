"""Text to speech with espeak-ng, with phoneme-level time alignment.

espeak-ng is a formant synthesiser: it turns text into phonemes, then phonemes into audio, and
can report when each phoneme starts. That gives what a FastSpeech 2-style model needs (audio,
phonemes and their durations) with no recordings and no aligner.

The library comes from the ``espeakng-loader`` wheel and is driven through ``ctypes``. espeak keeps
hidden state between utterances (the phase of its pitch "flutter", an automatic gain control,
a cycle counter), so the same text synthesised twice in one process comes out a few samples
different. To make :func:`synthesize` a pure function, every call loads a private copy of the
library, initialises it, synthesises, and unloads it again (about 10 ms): each utterance starts
from the library's pristine state. A lock serialises calls, because the library is global C state.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import functools
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass

import espeakng_loader
import torch

from reprobook._validate import check_choice, check_nonempty_text, check_range

SAMPLE_RATE = 22050
"""espeak-ng's native sample rate in Hz; every waveform here uses it."""

VOICES: dict[str, str] = {"en": "en-us", "es": "es", "fr": "fr", "de": "de", "it": "it"}
"""Language code (also the ``num2words`` code) -> espeak-ng voice name. ``en`` is American English."""

PAUSE = "_"
"""The symbol for silence: leading and trailing silence, espeak's pauses (``_``, ``_:``, ``_|``) and
the short gaps where espeak switches language for a foreign word (events named ``(en)``, ``(fr)``)."""

RATE_RANGE = (80, 450)
"""Speaking rates espeak accepts, in words per minute (default 175)."""

PITCH_RANGE = (0, 100)
"""espeak's base-pitch setting (default 50); not in Hz."""

INTONATION_RANGE = (0, 100)
"""espeak's pitch-range setting (default 50): how far the pitch moves within a sentence, 0 = monotone."""

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_PARAMETER_RANGE = 4

_lock = threading.Lock()


@dataclass(frozen=True)
class Utterance:
    """One synthesised sentence and its phoneme alignment.

    ``waveform``: ``(L,)`` float32 in ``[-1, 1]`` at :data:`SAMPLE_RATE`.
    ``phonemes``: ``N`` espeak phoneme mnemonics (Kirshenbaum-style ASCII, stress marks ``'``/``,``
    kept as a prefix), with :data:`PAUSE` for silence.
    ``starts``/``ends``: ``(N,)`` int64 sample indices. The segments tile the audio:
    ``starts[0] == 0``, ``starts[i + 1] == ends[i]`` and ``ends[-1] == L``.
    """

    text: str
    voice: str
    rate: int
    pitch: int
    intonation: int
    waveform: torch.Tensor
    phonemes: list[str]
    starts: torch.Tensor
    ends: torch.Tensor

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.waveform.numel() / SAMPLE_RATE


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``; ``audio_position`` is in ms, ``sample`` the exact sample index."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _remove_if_owner(folder: str, owner_pid: int) -> None:
    """Delete ``folder`` at exit, unless this is a forked child still sharing it with its parent."""
    if os.getpid() == owner_pid:
        shutil.rmtree(folder, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def _private_library_path() -> str:
    """A per-process copy of libespeak-ng, so that unloading it really resets its state.

    The dynamic loader shares one instance per file: another package holding the wheel's copy open
    would keep it (and its state) alive. Our own copy has no other users.
    """
    source = espeakng_loader.get_library_path()
    folder = tempfile.mkdtemp(prefix="reprobook-espeak-")
    atexit.register(_remove_if_owner, folder, os.getpid())
    target = os.path.join(folder, os.path.basename(source))
    shutil.copyfile(source, target)
    return target


def _unload(library: ctypes.CDLL) -> None:
    if sys.platform == "win32":
        _ctypes.FreeLibrary(library._handle)
    else:
        _ctypes.dlclose(library._handle)


def _run_espeak(
    text: str, voice_name: str, rate: int, pitch: int, intonation: int
) -> tuple[bytes, list[tuple[str, int]]]:
    """Synthesise with a freshly loaded library: 16-bit PCM bytes and (phoneme, start sample) events."""
    pcm: list[bytes] = []
    events: list[tuple[str, int]] = []

    def collect(wav: ctypes._Pointer[ctypes.c_short], num_samples: int, event: ctypes._Pointer[_Event]) -> int:
        if num_samples > 0:
            pcm.append(ctypes.string_at(wav, 2 * num_samples))
        i = 0
        while event[i].type != _EVENT_LIST_TERMINATED:
            if event[i].type == _EVENT_PHONEME:
                events.append((event[i].id.string.decode("utf-8", "replace"), event[i].sample))
            i += 1
        return 0  # 0 = continue synthesis

    callback = _SynthCallback(collect)
    library = ctypes.CDLL(_private_library_path())
    try:
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        data_path = os.fsencode(espeakng_loader.get_data_path())
        rate_hz = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS)
        if rate_hz != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng failed to initialise from {data_path!r} (returned {rate_hz})")
        library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        library.espeak_SetSynthCallback(callback)
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        if library.espeak_SetVoiceByName(voice_name.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice named {voice_name!r}")
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_SetParameter(_PARAMETER_RATE, rate, 0)
        library.espeak_SetParameter(_PARAMETER_PITCH, pitch, 0)
        library.espeak_SetParameter(_PARAMETER_RANGE, intonation, 0)
        encoded = text.encode("utf-8")
        library.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        library.espeak_Terminate()
    finally:
        _unload(library)
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return b"".join(pcm), events


def _segments(events: list[tuple[str, int]], num_samples: int) -> list[tuple[str, int, int]]:
    """Turn phoneme start events into contiguous ``(symbol, start, end)`` segments over the audio.

    Each phoneme lasts until the next one starts. Silence before the first phoneme becomes a
    :data:`PAUSE`; zero-length pauses are dropped and neighbouring pauses merged.
    """
    marks: list[tuple[str, int]] = [(PAUSE, 0)]
    for name, sample in events:
        symbol = PAUSE if not name or name[0] in "_(" else name
        marks.append((symbol, min(max(sample, marks[-1][1]), num_samples)))  # clamp: never go back
    bounds = [start for _, start in marks[1:]] + [num_samples]
    merged: list[tuple[str, int, int]] = []
    for (symbol, start), end in zip(marks, bounds):
        if symbol == PAUSE and end == start:
            continue
        if merged and symbol == PAUSE and merged[-1][0] == PAUSE:
            merged[-1] = (PAUSE, merged[-1][1], end)
        else:
            merged.append((symbol, start, end))
    return merged


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50, intonation: int = 50) -> Utterance:
    """Synthesise ``text`` with espeak-ng and align it to phonemes.

    ``voice`` is a language code from :data:`VOICES`; ``rate`` is in words per minute
    (:data:`RATE_RANGE`); ``pitch`` is espeak's base-pitch setting (:data:`PITCH_RANGE`);
    ``intonation`` its pitch range (:data:`INTONATION_RANGE`: 0 monotone, 50 default, 100 lively).
    Deterministic: the same arguments give the same waveform, sample for sample.
    Returns an :class:`Utterance` with a ``(L,)`` waveform and ``N`` phoneme segments tiling it.
    """
    check_nonempty_text("text", text)
    check_choice("voice", voice, VOICES)
    check_range("rate", rate, *RATE_RANGE)
    check_range("pitch", pitch, *PITCH_RANGE)
    check_range("intonation", intonation, *INTONATION_RANGE)
    with _lock:
        pcm, events = _run_espeak(text, VOICES[voice], int(rate), int(pitch), int(intonation))
    waveform = torch.frombuffer(bytearray(pcm), dtype=torch.int16).to(torch.float32) / 32768.0
    segments = _segments(events, waveform.numel())
    if all(symbol == PAUSE for symbol, _, _ in segments):
        raise ValueError(f"text={text!r} produced no phonemes in voice {voice!r}")
    return Utterance(
        text=text,
        voice=voice,
        rate=int(rate),
        pitch=int(pitch),
        intonation=int(intonation),
        waveform=waveform,
        phonemes=[symbol for symbol, _, _ in segments],
        starts=torch.tensor([start for _, start, _ in segments], dtype=torch.int64),
        ends=torch.tensor([end for _, _, end in segments], dtype=torch.int64),
    )
