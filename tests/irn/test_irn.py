"""IRN: shapes, exact invertibility, quantisation, losses, baselines, evaluation, training, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from reprobook.data.images import load_image
from reprobook.irn import (
    IRN,
    Bicubic,
    IRNConfig,
    SRNet,
    bicubic_downscale,
    evaluate,
    irn_losses,
    num_params,
    quantize,
    train,
    train_sr,
)
from reprobook.nn.invertible import haar_downsample


@pytest.fixture(autouse=True)
def _book_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROBOOK_PROFILE", "book")
    monkeypatch.delenv("REPROBOOK_KERNELS", raising=False)
    torch.manual_seed(0)


def _tiny(scale: int = 2) -> IRN:
    return IRN(scale, blocks_per_level=2, growth=4, depth=2)


def _perturb(model: torch.nn.Module, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def _photo_crops(n: int = 4, size: int = 16) -> list[torch.Tensor]:
    image = load_image("chelsea")
    return [image[:, 60 + 20 * i : 60 + 20 * i + size, 100 : 100 + size].clone() for i in range(n)]


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes(scale: int) -> None:
    model = _tiny(scale)
    x = torch.rand(2, 3, 16, 24)
    out = model(x)
    assert out.shape == (2, 3 * scale**2, 16 // scale, 24 // scale) and model.z_channels == 3 * (scale**2 - 1)
    y = model.downscale(x)
    assert y.shape == (2, 3, 16 // scale, 24 // scale)
    assert model.upscale(y).shape == x.shape
    assert model.inverse(out).shape == x.shape


@pytest.mark.parametrize("scale", [2, 4])
def test_fresh_model_is_the_haar_transform(scale: int) -> None:
    x = torch.rand(1, 3, 8, 8)
    haar = haar_downsample(x) if scale == 2 else haar_downsample(haar_downsample(x))
    torch.testing.assert_close(_tiny(scale)(x), haar)


@pytest.mark.parametrize("scale", [2, 4])
def test_inverse_of_forward_is_exact(scale: int) -> None:
    model = _tiny(scale).double()
    _perturb(model, 0.1)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = model(x)
    assert (out - (haar_downsample(x) if scale == 2 else haar_downsample(haar_downsample(x)))).abs().max() > 1e-2
    torch.testing.assert_close(model.inverse(out), x, atol=1e-10, rtol=0)
    y, z = out[:, :3], out[:, 3:]
    torch.testing.assert_close(model.upscale(y, z), x, atol=1e-10, rtol=0)  # with the stored z: exact


def test_upscale_draws_fresh_z_and_temperature_zero_is_z_zero() -> None:
    model = _tiny()
    _perturb(model, 0.1)
    y = torch.rand(1, 3, 4, 4)
    a, b = model.upscale(y), model.upscale(y)
    assert (a - b).abs().max() > 0
    torch.testing.assert_close(model.upscale(y, temperature=0.0), model.upscale(y, torch.zeros(1, 9, 4, 4)))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(model.upscale(y, generator=g1), model.upscale(y, generator=g2))


def test_quantize_rounds_to_8_bits_with_a_straight_through_gradient() -> None:
    y = torch.tensor([-0.2, 0.1234, 0.5, 1.3], requires_grad=True)
    q = quantize(y)
    torch.testing.assert_close(q, torch.tensor([0.0, 31 / 255, 128 / 255, 1.0]))
    q.sum().backward()
    torch.testing.assert_close(y.grad, torch.ones(4))  # identity, even where the clamp is active


def test_bicubic_downscale_is_antialiased() -> None:
    """A checkerboard at the Nyquist rate must vanish when halved; without antialiasing it aliases."""
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    x = board.float().expand(1, 3, 8, 8)
    small = bicubic_downscale(x, 2)
    assert small.shape == (1, 3, 4, 4) and (small - 0.5).abs().max() < 0.05


def test_losses_are_the_official_sums_and_all_finite() -> None:
    model = _tiny()
    x = torch.rand(3, 3, 8, 8)
    losses = irn_losses(model, x, lambda_fit=4.0)
    assert set(losses) == {"loss", "guide", "recon", "distr"}
    torch.testing.assert_close(losses["loss"], losses["guide"] + losses["recon"] + losses["distr"])
    # A fresh IRN is the Haar transform: z is its detail bands and y the 2x2 mean.
    bands = haar_downsample(x)
    torch.testing.assert_close(losses["distr"], bands[:, 3:].pow(2).sum() / 3)
    torch.testing.assert_close(losses["guide"], 4 * (bands[:, :3] - bicubic_downscale(x, 2)).pow(2).sum() / 3)
    assert losses["recon"] > 0.1 * 3 * 64  # reconstructing from z~ ~ N(0, I) is far off at the start


def test_bad_inputs_name_the_argument() -> None:
    model = _tiny()
    with pytest.raises(ValueError, match=r"x has H, W = 15, 16, not divisible by scale=2.*crop_to_multiple"):
        model(torch.rand(1, 3, 15, 16))
    with pytest.raises(ValueError, match=r"RGB batch of shape \(B, 3, H, W\), got \(1, 1, 8, 8\)"):
        model.downscale(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"scale=3 is not valid; expected one of: 2, 4"):
        IRN(3)
    with pytest.raises(ValueError, match=r"z must have shape \(1, 9, 4, 4\)"):
        model.upscale(torch.rand(1, 3, 4, 4), torch.zeros(1, 9, 4, 5))
    with pytest.raises(ValueError, match=r"yz must have shape \(B, 12, h, w\)"):
        model.inverse(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="crop_size=33 must be divisible by scale=2"):
        IRNConfig(crop_size=33)
    with pytest.raises(ValueError, match=r"scale=8 is not valid"):
        IRNConfig(scale=8)
    with pytest.raises(ValueError, match="lr_milestones must be fractions"):
        IRNConfig(lr_milestones=(0.5, 2.0))
    with pytest.raises(ValueError, match=r"images\[0\] must be a \(3, H, W\) tensor"):
        evaluate(Bicubic(2), [torch.rand(1, 8, 8)])


def test_config_follows_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IRNConfig().scale == 2 and IRNConfig().fit_weight == 4.0
    monkeypatch.setenv("REPROBOOK_PROFILE", "full")
    full = IRNConfig()
    assert (full.scale, full.growth, full.subnet_depth, full.crop_size, full.fit_weight) == (4, 32, 5, 144, 16.0)
    assert num_params(full.model()) == 4_355_136


def test_bicubic_baseline_and_sr_net_start_identical() -> None:
    """SRNet's tail starts at zero, so before training it is exactly the bicubic baseline."""
    x = torch.rand(2, 3, 12, 16)
    bicubic, sr = Bicubic(2), SRNet(2, width=8, num_blocks=1)
    y = bicubic.downscale(x)
    torch.testing.assert_close(sr.downscale(x), y)
    torch.testing.assert_close(sr.upscale(y), bicubic.upscale(y))
    assert y.shape == (2, 3, 6, 8) and torch.equal(y, torch.round(y * 255) / 255)


@pytest.mark.parametrize("target, scale", [(61_680, 2), (145_008, 2), (4_355_136, 4)])
def test_sr_net_matches_a_parameter_count(target: int, scale: int) -> None:
    net = SRNet.matching(target, scale)
    assert abs(num_params(net) - target) / target < 0.03
    assert num_params(net) == SRNet.num_params_for(net.head.out_channels, 4, scale)


def test_evaluate_bicubic_and_irn() -> None:
    # 33 rows: mod-cropped to 32
    images = [load_image("coffee")[:, 200:240, 250:300], load_image("astronaut")[:, 100:133, 200:232]]
    bicubic = evaluate(Bicubic(2), images, names=("coffee", "astronaut"), num_draws=5)
    assert bicubic.hr_psnr.shape == (1, 2) and math.isinf(bicubic.lr) and bicubic.spread == 0
    assert 20 < bicubic.psnr < 45 and 0 < bicubic.ssim <= 1
    assert bicubic.hr_images[1].shape == (3, 32, 32) and bicubic.lr_images[0].shape == (3, 20, 25)

    model = _tiny()
    _perturb(model, 0.02)
    irn = evaluate(model, images, num_draws=3, label="IRN")
    assert irn.hr_psnr.shape == (3, 2) and irn.spread > 0 and math.isfinite(irn.lr)
    assert irn.row()["method"] == "IRN" and model.training  # evaluate restores the training mode
    zero = evaluate(model, images, num_draws=3, temperature=0.0)
    assert zero.hr_psnr.shape == (1, 2)
    with pytest.raises(ValueError, match="names has 1 entries but images has 2"):
        evaluate(model, images, names=("a",))


def test_tiny_overfit_loss_falls() -> None:
    """Thirty steps on four crops: the total loss (dominated by reconstruction from a fresh z~) must fall a lot."""
    config = IRNConfig(
        blocks_per_level=2,
        growth=8,
        subnet_depth=2,
        crop_size=16,
        batch_size=4,
        num_steps=30,
        lr=2e-3,
        lr_milestones=(),
    )
    result = train(config, _photo_crops(), val_images=_photo_crops(2), eval_every=15, progress=False)
    losses = result.history["loss"]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert [step for step, _ in result.curve] == [0, 15, 30] and result.curve[-1][1] > result.curve[0][1]
    assert set(result.metrics) >= {"loss", "guide", "recon", "distr", "grad_norm", "val_psnr", "val_lr_psnr"}
    assert [step for step, _ in result.lr_curve] == [0, 15, 30] and 20 < result.lr_curve[-1][1] < float("inf")
    assert result.num_params == num_params(config.model()) and result.seconds > 0


def test_tiny_sr_overfit_loss_falls_and_matches_the_irn_size() -> None:
    config = IRNConfig(
        blocks_per_level=2,
        growth=8,
        subnet_depth=2,
        crop_size=16,
        batch_size=4,
        num_steps=30,
        lr=2e-3,
        lr_milestones=(),
    )
    result = train_sr(config, _photo_crops(), progress=False)
    losses = result.history["loss"]
    assert sum(losses[-5:]) < sum(losses[:5])
    assert abs(result.num_params - num_params(config.model())) / num_params(config.model()) < 0.1
    assert isinstance(result.model, SRNet)


def test_ablation_switches_reach_the_losses() -> None:
    """quantize=False and lambda_fit=0 change what is optimised (same seed, same first batch)."""
    base = dict(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=1, lr_milestones=())
    switches = {"base": {}, "no_fit": {"lambda_fit": 0.0}, "no_quant": {"quantize": False}}
    runs = {
        name: train(IRNConfig(**base, **extra), _photo_crops(2), progress=False)  # type: ignore[arg-type]
        for name, extra in switches.items()
    }
    assert runs["no_fit"].history["guide"] == [0.0] and runs["base"].history["guide"][0] > 0
    assert runs["no_quant"].history["recon"] != runs["base"].history["recon"]


def test_stopped_run_equals_the_full_run_snapshot_so_ablations_compare_exactly() -> None:
    """train(stop_after=k) reproduces the weights a full run had at step k (same seed, same schedule)."""
    config = IRNConfig(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=6)
    full = train(config, _photo_crops(2), val_images=_photo_crops(1), snapshots=[3], progress=False)
    short = train(config, _photo_crops(2), stop_after=3, progress=False)
    assert len(short.history.steps) == 3 and len(full.history.steps) == 6
    for (name, a), b in zip(full.model_at(3).state_dict().items(), short.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    final, stopped = full.model.state_dict().values(), short.model.state_dict().values()
    assert any((a - b).abs().max() > 0 for a, b in zip(final, stopped))
    with pytest.raises(ValueError, match="step=4 is not valid; expected one of: 3"):
        full.model_at(4)
    with pytest.raises(ValueError, match=r"stop_after must be an integer in \[1, num_steps=6\]"):
        train(config, _photo_crops(2), stop_after=7, progress=False)
    with pytest.raises(ValueError, match=r"snapshots must be steps in \[1, 3\]"):
        train(config, _photo_crops(2), stop_after=3, snapshots=[5], progress=False)


def test_weight_average_is_the_documented_mix() -> None:
    """ema=0.5 after one step returns (initial weights + trained weights) / 2; ema=0 returns the trained weights."""
    base = dict(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=1, lr_milestones=())
    plain = train(IRNConfig(**base, ema=0.0), _photo_crops(2), progress=False)  # type: ignore[arg-type]
    mixed = train(IRNConfig(**base, ema=0.5), _photo_crops(2), progress=False)  # type: ignore[arg-type]
    torch.manual_seed(0)
    from reprobook.train import seed_everything

    seed_everything(0)
    initial = IRNConfig(**base).model()  # type: ignore[arg-type]
    for (name, w1), w0, w_avg in zip(
        plain.model.state_dict().items(), initial.state_dict().values(), mixed.model.state_dict().values()
    ):
        torch.testing.assert_close(w_avg, (w0 + w1) / 2, msg=name)
    trained, fresh = plain.model.state_dict().values(), initial.state_dict().values()
    assert any((w1 - w0).abs().max() > 0 for w1, w0 in zip(trained, fresh))
    with pytest.raises(ValueError, match=r"ema must be in \[0, 1\)"):
        IRNConfig(ema=1.0)


def test_x4_trains_on_lazily_decoded_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The full profile's path: scale 4, images decoded per crop from files (as DIV2K is), then evaluated."""
    from PIL import Image

    from reprobook.data.images import ImageFiles

    paths = []
    for i, name in enumerate(("coffee", "chelsea")):
        path = tmp_path / f"{i}.png"
        Image.fromarray((load_image(name)[:, :48, :64].permute(1, 2, 0) * 255).round().byte().numpy()).save(path)
        paths.append(path)
    config = IRNConfig(
        scale=4, blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=2, num_workers=1
    )
    result = train(config, ImageFiles(paths), progress=False)
    assert result.model.scale == 4 and len(result.history.steps) == 2  # type: ignore[union-attr]
    evaluation = evaluate(result.model, [load_image("coffee")[:, :32, :40]], num_draws=2)  # type: ignore[arg-type]
    assert evaluation.hr_images[0].shape == (3, 32, 40) and evaluation.lr_images[0].shape == (3, 8, 10)
