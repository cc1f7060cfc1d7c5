"""ILC: invertibility, the y/v bookkeeping, real bitstreams (round trip, seeding, update() first), BD-rate, a tiny
overfit, the classical codecs, and clear errors on bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from reprobook import ilc
from reprobook.ilc.model import ILC, ConvAutoencoder


def _ilc(**kw: object) -> ILC:
    torch.manual_seed(0)
    options: dict = {"latent_channels": 12, "levels": 2, "blocks": 1, "growth": 4, "depth": 2} | kw
    model = ILC(**options)
    for p in model.transform.parameters():  # non-trivial couplings (a fresh one is the identity)
        p.data.add_(0.05 * torch.randn_like(p))
    return model


def _updated(model: ilc.ILC | ConvAutoencoder) -> ilc.ILC | ConvAutoencoder:
    model.update(force=True)
    return model.eval()


def test_transform_is_invertible() -> None:
    model = _ilc()
    x = torch.rand(2, 3, 16, 20)
    out = model.transform(x)
    assert out.shape == (2, 48, 4, 5)
    torch.testing.assert_close(model.transform(out, reverse=True), x, atol=1e-5, rtol=1e-5)


def test_y_and_v_channel_bookkeeping_and_oracle_inverse() -> None:
    model = _ilc(latent_channels=7)
    x = torch.rand(1, 3, 8, 8)
    y, v = model.analysis(x)
    assert y.shape == (1, 7, 2, 2) and v.shape == (1, 41, 2, 2)  # 7 + 41 = 3 * 4^2
    torch.testing.assert_close(model.synthesis(y, v), x, atol=1e-5, rtol=1e-5)  # unquantised y, true v: exact
    assert model.sample_v(y).shape == v.shape


def test_round_trip_decodes_the_same_y_hat_and_is_deterministic() -> None:
    model = _updated(_ilc())
    x = torch.rand(3, 16, 24)
    data = ilc.compress(model, x)
    y, _ = model.analysis(x.unsqueeze(0))
    y_hat_forward, _ = model.entropy_bottleneck(y)  # eval: rounding around the medians
    y_hat, size = ilc.decode_latent(model, data)
    assert size == (16, 24)
    torch.testing.assert_close(y_hat, y_hat_forward)
    a, b = ilc.decompress(model, data), ilc.decompress(model, data)
    torch.testing.assert_close(a, b)  # the seed comes from the bytes
    assert not torch.equal(a, ilc.decompress(model, data, seed=123))  # another v~, another image
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1


def test_autoencoder_round_trip_and_real_bits() -> None:
    torch.manual_seed(0)
    model = _updated(ConvAutoencoder(12, 2, 8))
    x = torch.rand(3, 16, 16)
    data = ilc.compress(model, x)
    assert ilc.decompress(model, data).shape == x.shape
    assert 8 * len(data) >= 8 * 11  # the 11-byte header counts


def test_coding_needs_update_first() -> None:
    model = _ilc().eval()
    with pytest.raises(RuntimeError, match=r"update\(force=True\)"):
        ilc.compress(model, torch.rand(3, 8, 8))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(3, 10, 8), "divisible by 4"),
        (torch.rand(1, 8, 8), "3 channels"),
        (torch.rand(3, 8, 8) * 2, r"\[0, 1\]"),
        (torch.rand(2, 3, 8, 8), "one image"),
    ],
    ids=["sides", "channels", "range", "batch"],
)
def test_compress_refuses_bad_images(x: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ilc.compress(_updated(_ilc()), x)


def test_decompress_refuses_truncated_and_foreign_bytes() -> None:
    model = _updated(_ilc())
    data = ilc.compress(model, torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="truncated"):
        ilc.decompress(model, data[:-1])
    with pytest.raises(ValueError, match="not an ILC-chapter bitstream"):
        ilc.decompress(model, b"\x89PNG\r\n\x1a\n" + data)
    torch.manual_seed(0)
    other = _updated(ConvAutoencoder(12, 2, 8))
    with pytest.raises(ValueError, match="auto-encoder"):
        ilc.decompress(model, ilc.compress(other, torch.rand(3, 8, 8)))


def test_bd_rate_on_a_known_pair_of_curves() -> None:
    rate = [0.25, 0.5, 1.0, 2.0]
    quality = [28.0, 31.0, 34.0, 37.0]
    assert ilc.bd_rate(rate, quality, rate, quality) == pytest.approx(0.0, abs=1e-9)
    # The same curve with every rate at 80 %: 20 % fewer bits at every PSNR.
    assert ilc.bd_rate(rate, quality, [0.8 * r for r in rate], quality) == pytest.approx(-20.0, abs=1e-6)
    with pytest.raises(ValueError, match="do not overlap"):
        ilc.bd_rate(rate, quality, rate, [q + 20 for q in quality])
    with pytest.raises(ValueError, match=">= 3"):
        ilc.bd_rate(rate[:2], quality[:2], rate, quality)


def test_classical_codecs_give_real_files() -> None:
    x = torch.rand(3, 32, 32)
    for codec in ilc.CODECS:
        data, decoded = ilc.classical_codec(x, codec, 50)
        assert len(data) > 0 and decoded.shape == x.shape
    rows = ilc.classical_curve([x], "jpeg", [10, 90])
    assert rows[0]["bpp"] < rows[1]["bpp"] and rows[0]["psnr"] < rows[1]["psnr"]
    with pytest.raises(ValueError, match="codec"):
        ilc.classical_codec(x, "png", 50)


def test_loss_terms() -> None:
    model = _ilc().train()
    x = torch.rand(2, 3, 8, 8)
    losses = ilc.rate_distortion_loss(model(x), x, 0.01, 1.0, model.log_det_v())
    expected = losses["bpp"] + 0.01 * 255**2 * losses["mse"] + losses["v"]
    torch.testing.assert_close(losses["loss"], expected)
    assert all(math.isfinite(float(v)) for v in losses.values())


@pytest.mark.parametrize("model", ["ilc", "ae"])
def test_tiny_overfit_loss_falls(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "smoke")
    config = ilc.ILCConfig(model=model, num_steps=30, eval_every=0, lmbda=0.01, lr=2e-3)  # type: ignore[arg-type]
    data = ilc.load_data(config)
    data = replace(data, train=[data.train[0][:, :64, :64]])
    result = ilc.train(config, data, progress=False)
    loss = result.history["loss"]
    assert sum(loss[-5:]) / 5 < sum(loss[:5]) / 5
    ilc.check_updated(result.model)  # train() leaves the codec ready to code
    scores = ilc.evaluate(result.model, data)
    assert scores.bpp.shape == (len(data.test),) and "bpp (real)" in scores.row()


def test_decoding_study_keys() -> None:
    model = _updated(_ilc())
    study = ilc.decoding_study(model, torch.rand(3, 16, 16), draws=3)
    assert study["draws"].shape == (3,) and study["spread"] >= 0
    assert all(math.isfinite(study[k]) for k in ("oracle", "zero", "fresh"))
    assert study["images"]["oracle"].shape == (3, 16, 16) and study["v_std"] > 0
    with pytest.raises(ValueError, match="ILC model"):
        ilc.decoding_study(_updated(ConvAutoencoder(12, 2, 8)), torch.rand(3, 16, 16))  # type: ignore[arg-type]


def test_decoding_temperature_zero_is_the_v_zero_decode_and_is_restored() -> None:
    model = _updated(_ilc(temperature=0.5))
    x = torch.rand(3, 16, 16)
    stream = ilc.compress(model, x)
    v = model.analysis(x.unsqueeze(0))[1]
    with ilc.decoding_temperature(model, 0.0):
        mean_decode = ilc.decompress(model, stream)
    assert model.temperature == 0.5
    assert torch.equal(mean_decode, ilc.decompress(model, stream, v=torch.zeros_like(v)))
    assert not torch.equal(mean_decode, ilc.decompress(model, stream))  # a draw at 0.5 is not the mean
    with pytest.raises(ValueError, match="temperature"), ilc.decoding_temperature(model, -1.0):
        pass
    assert model.temperature == 0.5


def test_prior_learns_at_its_own_rate_and_both_rates_decay_at_the_milestone() -> None:
    config = ilc.ILCConfig(num_steps=10, lr=1e-3, prior_lr=1e-2, lr_milestones=(0.5,), lr_decay=0.1)
    model = ilc.build_model(config)
    main, aux, schedule = ilc.optimizers(model, config)
    prior_ids = {id(p) for n, p in model.named_parameters() if n.startswith("entropy_bottleneck.")}
    transform, prior = main.param_groups
    assert prior["lr"] == 1e-2 and {id(p) for p in prior["params"]} < prior_ids
    assert transform["lr"] == 1e-3 and not {id(p) for p in transform["params"]} & prior_ids
    assert [n for n, p in model.named_parameters() if p is aux.param_groups[0]["params"][0]] == [
        "entropy_bottleneck.quantiles"
    ]
    for _ in range(5):
        main.step()
        schedule.step()
    assert [g["lr"] for g in main.param_groups] == pytest.approx([1e-4, 1e-3])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lmbda", 0.0),
        ("model", "vae"),
        ("crop_size", 30),
        ("latent_channels", 48),
        ("temperature", -1.0),
        ("lr_milestones", (1.5,)),
        ("prior_lr", 0.0),
    ],
)
def test_config_refuses_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ilc.ILCConfig(**{field: value})  # type: ignore[arg-type]
