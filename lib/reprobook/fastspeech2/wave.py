"""FastSpeech 2s (Sec. 2.4 of the paper): text to waveform, with no mel spectrogram at inference.

* :class:`WaveDecoder` -- ``H'' (B, S, d) -> waveform (B, S * 256)``: transposed 1-D convolutions upsample by the
  hop (8 x 8 x 4 = 256), then a non-causal WaveNet-like stack of dilated convolutions with gated activations
  ``tanh(W_f * x) * sigmoid(W_g * x)``, residual and skip connections;
* :class:`Discriminator` -- Parallel WaveGAN's: a stack of dilated 1-D convolutions with leaky ReLU giving one
  real/fake score per sample, trained with the least-squares GAN loss (LSGAN);
* :func:`multi_resolution_stft_loss` -- spectral convergence ``||S - S^||_F / ||S||_F`` plus the L1 distance of
  log magnitudes, averaged over three STFT resolutions (Parallel WaveGAN, Eq. 4-6).

The paper trains the waveform decoder on random slices of the adaptor output (the full utterance does not fit in
memory next to the discriminator) while the mel decoder keeps training on the whole sequence as an auxiliary task,
and drops the mel decoder at inference. :class:`WaveConfig` holds the sizes and the recipe of that joint training
(``FastSpeech2Config(model="fastspeech2s").wave``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reprobook._validate import check_float, check_int
from reprobook.data.speech import HOP_LENGTH
from reprobook.profiles import pick_default

UPSAMPLE = (8, 8, 4)
RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))
"""``(n_fft, hop, win)`` of the multi-resolution STFT loss."""


@dataclass
class WaveConfig:
    """FastSpeech 2s's waveform side: ``num_steps`` of joint training at learning rate ``lr``, on slices of
    ``slice_frames`` frames, the LSGAN loss (weight ``adversarial_weight``) switched on after ``gan_start`` steps;
    a :class:`WaveDecoder` of ``channels`` channels and ``num_layers`` gated layers. Warm-up, batch size, gradient
    clipping and seed are the run's (:class:`~reprobook.fastspeech2.FastSpeech2Config`)."""

    num_steps: int = pick_default(smoke=6, book=60, full=50_000)
    slice_frames: int = 16
    gan_start: int = pick_default(smoke=3, book=30, full=10_000)
    adversarial_weight: float = 4.0
    lr: float = 2e-3
    channels: int = 32
    num_layers: int = 6

    def __post_init__(self) -> None:
        for name in ("num_steps", "slice_frames", "channels", "num_layers"):
            check_int(f"wave.{name}", getattr(self, name), 1)
        check_int("wave.gan_start", self.gan_start)
        check_float("wave.adversarial_weight", self.adversarial_weight, 0)
        check_float("wave.lr", self.lr, 0, open_low=True)


class _GatedResidual(nn.Module):
    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            channels, 2 * channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2)
        )
        self.res, self.skip = nn.Conv1d(channels, channels, 1), nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, g = self.conv(x).chunk(2, dim=1)
        h = torch.tanh(f) * torch.sigmoid(g)
        return (x + self.res(h)) * 0.7071067811865476, self.skip(h)


class WaveDecoder(nn.Module):
    """``forward(hidden (B, S, d)) -> waveform (B, S * HOP_LENGTH)`` in ``[-1, 1]``."""

    def __init__(self, d_model: int, channels: int = 48, num_layers: int = 6) -> None:
        super().__init__()
        if HOP_LENGTH != 8 * 8 * 4:
            raise AssertionError("the upsampling factors must multiply to the hop length")
        layers: list[nn.Module] = []
        c_in = d_model
        widths = (channels * 2, channels, channels)
        for rate, c_out in zip(UPSAMPLE, widths):
            layers += [nn.ConvTranspose1d(c_in, c_out, 2 * rate, stride=rate, padding=rate // 2), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.upsample = nn.Sequential(*layers)
        self.gated = nn.ModuleList(_GatedResidual(channels, 2 ** (i % 4)) for i in range(num_layers))
        self.out = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, 1), nn.LeakyReLU(0.2), nn.Conv1d(channels, 1, 1)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.upsample(hidden.transpose(1, 2))[..., : hidden.shape[1] * HOP_LENGTH]
        skips = torch.zeros_like(x)
        for layer in self.gated:
            x, s = layer(x)
            skips = skips + s
        return torch.tanh(self.out(skips)).squeeze(1)


class Discriminator(nn.Module):
    """Parallel WaveGAN's discriminator, smaller: ``(B, L) -> (B, L)`` scores."""

    def __init__(self, channels: int = 32, num_layers: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(num_layers - 1):
            dilation = 1 if i == 0 else i
            layers += [nn.Conv1d(c_in, channels, 3, dilation=dilation, padding=dilation), nn.LeakyReLU(0.2)]
            c_in = channels
        layers.append(nn.Conv1d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(waveform[:, None]).squeeze(1)
        return out


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def multi_resolution_stft_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over :data:`RESOLUTIONS`: ``(B, L), (B, L) -> ()``."""
    if fake.shape != real.shape:
        raise ValueError(
            f"fake and real waveforms must have the same shape, got {tuple(fake.shape)} and {tuple(real.shape)}"
        )
    total = torch.zeros((), device=fake.device)
    for n_fft, hop, win in RESOLUTIONS:
        s_fake, s_real = _magnitude(fake, n_fft, hop, win), _magnitude(real, n_fft, hop, win)
        convergence = torch.linalg.norm(s_real - s_fake) / torch.linalg.norm(s_real).clamp(min=1e-7)
        log_mag = F.l1_loss(torch.log(s_fake), torch.log(s_real))
        total = total + convergence + log_mag
    return total / len(RESOLUTIONS)


def random_slices(
    hidden: torch.Tensor,
    mel_lengths: torch.Tensor,
    waveforms: list[torch.Tensor],
    frames: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned random windows: ``frames`` frames of ``hidden (B, T, d)`` and the matching ``frames * 256`` samples
    of each waveform (frame ``t`` is centred on sample ``t * 256``; the half-hop offset is ignored)."""
    pieces, audio = [], []
    for b, wave in enumerate(waveforms):
        usable = max(1, min(int(mel_lengths[b]), wave.numel() // HOP_LENGTH) - frames)
        start = int(torch.randint(0, usable, (1,), generator=generator))
        piece = hidden[b, start : start + frames]
        pieces.append(F.pad(piece, (0, 0, 0, frames - piece.shape[0])))
        chunk = wave[start * HOP_LENGTH : (start + frames) * HOP_LENGTH]
        audio.append(F.pad(chunk, (0, frames * HOP_LENGTH - chunk.numel())))
    return torch.stack(pieces), torch.stack(audio).to(hidden.device)
