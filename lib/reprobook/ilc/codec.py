"""Real bitstreams: :func:`compress` an image into bytes, :func:`decompress` them back, with CompressAI's rANS coder.

The byte string is ``MAGIC`` (3 bytes: ``b"IL"`` and the codec kind, 1 = ILC, 2 = auto-encoder), the image height
and width (2 x uint16), the payload length (uint32), then CompressAI's ``EntropyBottleneck.compress`` string of
``y``. Every byte counts in the real bits per pixel. The decoder checks the header, the kind and the length, so a
truncated or foreign string fails with a clear error instead of decoding garbage.

ILC's decoder draws ``v~`` from a generator seeded with ``seed``, by default a number derived from the bytes
themselves (SHA-256), so one bitstream always decodes to one image.
"""

from __future__ import annotations

import hashlib
import struct

import torch
from torch import Tensor

from reprobook.ilc.model import ILC, _Codec, check_image
from reprobook.nn import model_device

_MAGIC = b"IL"
_HEADER = struct.Struct(">3sHHI")


def _kind(model: _Codec) -> int:
    return 1 if isinstance(model, ILC) else 2


def check_updated(model: _Codec) -> None:
    """``RuntimeError`` unless ``model.update(force=True)`` has built the entropy coder's CDF tables."""
    bottleneck = model.entropy_bottleneck
    if bottleneck._quantized_cdf.numel() == 0 or bottleneck._offset.numel() == 0:
        raise RuntimeError(
            "the entropy model has no CDF tables yet: call model.update(force=True) after training and before "
            "compress()/decompress() (CompressAI builds the rANS tables from the learned prior there)"
        )


def seed_from_bytes(data: bytes) -> int:
    """The default seed of ``v~``: the first 8 bytes of ``SHA-256(data)`` as an integer below 2^63."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 1


@torch.no_grad()
def compress(model: _Codec, x: Tensor) -> bytes:
    """One image ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]`` -> its byte string (header + rANS payload)."""
    check_updated(model)
    batch = x.unsqueeze(0) if isinstance(x, Tensor) and x.ndim == 3 else x
    check_image("x", batch, model.factor)
    if batch.shape[0] != 1:
        raise ValueError(f"compress codes one image; got a batch of {batch.shape[0]}, call it once per image")
    height, width = batch.shape[-2:]
    if max(height, width) >= 2**16:
        raise ValueError(f"x is {height}x{width}; sides must be below 65536")
    was_training = model.training
    model.eval()
    try:
        dev = model_device(model)
        y, _ = model.analysis(batch.to(dev))
        payload = model.entropy_bottleneck.compress(y.cpu() if dev.type != "cpu" else y)[0]
    finally:
        model.train(was_training)
    return _HEADER.pack(_MAGIC + bytes([_kind(model)]), height, width, len(payload)) + payload


def parse_header(data: bytes) -> tuple[int, int, int, bytes]:
    """``(kind, height, width, payload)`` of a byte string from :func:`compress`; ``ValueError`` if it is not one."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"data must be the bytes returned by compress(), got {type(data).__name__}")
    if len(data) < _HEADER.size or bytes(data[:2]) != _MAGIC:
        raise ValueError("data is not an ILC-chapter bitstream (missing the b'IL' header); was it made by compress()?")
    tag, height, width, length = _HEADER.unpack(bytes(data[: _HEADER.size]))
    payload = bytes(data[_HEADER.size :])
    if len(payload) != length:
        raise ValueError(
            f"data is truncated or padded: the header announces {length} payload bytes, got {len(payload)}"
        )
    return tag[2], height, width, payload


@torch.no_grad()
def decode_latent(model: _Codec, data: bytes) -> tuple[Tensor, tuple[int, int]]:
    """The dequantised latent ``y_hat`` ``(1, M, h, w)`` a byte string holds, and the image size ``(H, W)``."""
    check_updated(model)
    kind, height, width, payload = parse_header(data)
    if kind != _kind(model):
        names = {1: "an ILC", 2: "an auto-encoder"}
        raise ValueError(
            f"data was made by {names.get(kind, 'an unknown')} codec, but model is {names[_kind(model)]} codec"
        )
    if height % model.factor or width % model.factor:
        raise ValueError(f"the header's size {height}x{width} is not divisible by {model.factor}: corrupt data")
    size = (height // model.factor, width // model.factor)
    y_hat = model.entropy_bottleneck.decompress([payload], size)
    return y_hat, (height, width)


@torch.no_grad()
def decompress(
    model: _Codec, data: bytes, *, seed: int | None = None, v: Tensor | None = None, clamp: bool = True
) -> Tensor:
    """Bytes from :func:`compress` -> the decoded image ``(3, H, W)`` in ``[0, 1]``.

    ILC draws ``v~ ~ N(0, temperature^2 I)`` from a generator seeded with ``seed`` (default
    :func:`seed_from_bytes`); ``v`` overrides the draw (the true ``v`` for the oracle, zeros for ``v = 0``).
    """
    y_hat, _ = decode_latent(model, data)
    was_training = model.training
    model.eval()
    try:
        dev = model_device(model)
        generator = torch.Generator().manual_seed(seed_from_bytes(bytes(data)) if seed is None else seed)
        x_hat = model.synthesis(y_hat.to(dev), None if v is None else v.to(dev), generator=generator)
    finally:
        model.train(was_training)
    out = x_hat[0].cpu()
    return out.clamp(0, 1) if clamp else out
