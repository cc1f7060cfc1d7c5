"""IRN: shapes, exact invertibility, quantisation, losses, baselines, evaluation, training, bad inputs."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from reprobook.data.images import load_image
from reprobook.irn import (
    IRN,
    Bicubic,
    IRNConfig,
    IRNData,
    IRNResult,
    SRNet,
    bicubic_downscale,
    build_model,
    evaluate,
    irn_losses,
    load_data,
    quantize,
    train,
    validation_psnr,
)
from reprobook.irn.data import BRIGHTNESS_RANGE, TrainingCrops
from reprobook.nn import count_parameters
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


def _data(train: int = 4, valid: int = 2) -> IRNData:
    """Tiny data: training crops of one photo, validation crops of another, two small test photos."""
    test = [load_image("coffee")[:, 200:240, 250:300], load_image("astronaut")[:, 100:132, 200:232]]
    valid_images = [load_image("coffee")[:, 100 + 20 * i : 116 + 20 * i, 100:116].clone() for i in range(valid)]
    return IRNData(train=_photo_crops(train), valid=valid_images, test=test, test_names=["coffee", "astronaut"])


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
    with pytest.raises(ValueError, match=r"x has H, W = 15, 16, not divisible by 2.*crop_to_multiple"):
        model(torch.rand(1, 3, 15, 16))
    with pytest.raises(ValueError, match=r"x must have 3 channels \(B, 3, H, W\), got \(1, 1, 8, 8\)"):
        model.downscale(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"x must hold floats in \[0, 1\]"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"scale=3 is not valid; expected one of: 2, 4"):
        IRN(3)
    with pytest.raises(ValueError, match=r"z must have shape \(1, 9, 4, 4\)"):
        model.upscale(torch.rand(1, 3, 4, 4), torch.zeros(1, 9, 4, 5))
    with pytest.raises(ValueError, match=r"yz must have 12 channels \(B, 12, H, W\)"):
        model.inverse(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"y must have 3 channels"):
        SRNet(2, width=4, num_blocks=1)(torch.rand(1, 1, 4, 4))
    bad = IRNData(train=_photo_crops(1), valid=[torch.rand(1, 8, 8)], test=[torch.rand(3, 8, 8)], test_names=["a"])
    with pytest.raises(ValueError, match=r"valid image 0 must be a \(3, H, W\) tensor"):
        evaluate(Bicubic(2), bad, "valid")
    with pytest.raises(ValueError, match=r"split='dev' is not valid; expected one of: 'train', 'valid', 'test'"):
        evaluate(Bicubic(2), bad, "dev")
    with pytest.raises(ValueError, match="num_draws=0 is out of range"):
        evaluate(Bicubic(2), bad, num_draws=0)
    with pytest.raises(ValueError, match="test_names has 2 entries but test has 1 images"):
        IRNData(train=_photo_crops(1), valid=[torch.rand(3, 8, 8)], test=[torch.rand(3, 8, 8)], test_names=["a", "b"])
    with pytest.raises(ValueError, match="IRNData.train is empty"):
        IRNData(train=[], valid=[torch.rand(3, 8, 8)], test=[torch.rand(3, 8, 8)], test_names=["a"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "edsr", r"model='edsr' is not valid; expected one of: 'irn', 'sr'"),
        ("dataset", "set14", r"dataset='set14' is not valid"),
        ("scale", 8, r"scale=8 is not valid"),
        ("crop_size", 33, "crop_size=33 must be divisible by scale=2"),
        ("crop_size", 0, "crop_size=0 is out of range"),
        ("blocks_per_level", 2.0, "blocks_per_level must be an integer"),
        ("num_steps", True, "num_steps must be an integer"),
        ("clamp", math.nan, "clamp must be a finite number"),
        ("lr", math.inf, "lr must be a finite number"),
        ("lr", 0.0, "lr=0.0 is out of range"),
        ("lr_milestones", (0.5, 2.0), "lr_milestones must be a tuple of fractions"),
        ("lr_milestones", (math.nan,), "lr_milestones must be a tuple of fractions"),
        ("lr_decay", 0.0, "lr_decay=0.0 is out of range"),
        ("weight_decay", -1e-5, "weight_decay=-1e-05 is out of range"),
        ("grad_clip", math.nan, "grad_clip must be a finite number"),
        ("lambda_fit", -1.0, "lambda_fit=-1.0 is out of range"),
        ("lambda_rec", math.nan, "lambda_rec must be a finite number"),
        ("lambda_distr", -1.0, "lambda_distr=-1.0 is out of range"),
        ("quantize", 1, "quantize must be True or False"),
        ("colour_augment", "yes", "colour_augment must be True or False"),
        ("train_images", "photo", "train_images='photo' is not valid; expected one of: 'photos', 'all'"),
        ("ema", 1.0, r"ema=1.0 is out of range; expected 0 <= ema < 1"),
        ("ema", math.nan, "ema must be a finite number"),
        ("val_side", 1, "val_side=1 is out of range; expected 2 <= val_side"),
        ("eval_every", -1, "eval_every=-1 is out of range"),
        ("seed", -1, "seed=-1 is out of range"),
        ("num_workers", 0.5, "num_workers must be an integer"),
    ],
)
def test_config_refuses_bad_values_by_name(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IRNConfig(**{field: value})  # type: ignore[arg-type]


def test_config_follows_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    book = IRNConfig()
    assert (book.scale, book.fit_weight, book.dataset, book.val_side, book.validation_period) == (
        2,
        4.0,
        "photos",
        128,
        book.num_steps // 10,
    )
    assert (book.label, IRNConfig(model="sr").label) == ("IRN x2", "SR CNN x2")
    assert IRNConfig(eval_every=0).validation_period == 0 and IRNConfig(eval_every=7).validation_period == 7
    monkeypatch.setenv("REPROBOOK_PROFILE", "full")
    full = IRNConfig()
    assert (full.scale, full.growth, full.subnet_depth, full.crop_size, full.fit_weight) == (4, 32, 5, 144, 16.0)
    assert (full.dataset, full.val_side, full.label) == ("div2k", 256, "IRN x4")
    assert count_parameters(build_model(full)) == 4_355_136


def test_build_model_sizes_the_sr_cnn_to_the_irn() -> None:
    config = IRNConfig(blocks_per_level=2, growth=8, subnet_depth=2)
    irn, sr = build_model(config), build_model(IRNConfig(blocks_per_level=2, growth=8, subnet_depth=2, model="sr"))
    assert isinstance(irn, IRN) and isinstance(sr, SRNet)
    assert abs(count_parameters(sr) - count_parameters(irn)) / count_parameters(irn) < 0.1


def test_load_data_crops_the_photos(monkeypatch: pytest.MonkeyPatch) -> None:
    """The book's photos: test photos mod-cropped to the scale, validation crops of side val_side at most."""
    from reprobook.data.images import TEST_IMAGES, TRAIN_IMAGES
    from reprobook.irn.data import EXTRA_IMAGES

    data = load_data(IRNConfig(scale=4, crop_size=32, val_side=130))
    assert len(data.train) == len(TRAIN_IMAGES) + len(EXTRA_IMAGES) and data.test_names == list(TEST_IMAGES)
    assert not set(EXTRA_IMAGES) & set(TEST_IMAGES)
    assert len(load_data(IRNConfig(train_images="photos")).train) == len(TRAIN_IMAGES)
    for test, valid in zip(data.test, data.valid):
        assert test.shape[0] == 3 and test.shape[1] % 4 == 0 and test.shape[2] % 4 == 0
        assert valid.shape == (3, 128, 128)  # 130 rounded down to a multiple of 4
    images, names = data.split("valid")
    assert images is data.valid and names == tuple(TEST_IMAGES)
    assert data.split("train")[1][0] == "train 0"


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
    assert abs(count_parameters(net) - target) / target < 0.03
    assert count_parameters(net) == SRNet.num_params_for(net.head.out_channels, 4, scale)


def test_evaluate_bicubic_and_irn() -> None:
    data = _data()
    data.test[1] = load_image("astronaut")[:, 100:133, 200:232]  # 33 rows: mod-cropped to 32
    bicubic = evaluate(Bicubic(2), data, num_draws=5)
    assert bicubic.hr_psnr.shape == (1, 2) and math.isinf(bicubic.lr) and bicubic.spread == 0
    assert 20 < bicubic.psnr < 45 and 0 < bicubic.ssim <= 1 and bicubic.names == ("coffee", "astronaut")
    assert bicubic.hr_images[1].shape == (3, 32, 32) and bicubic.lr_images[0].shape == (3, 20, 25)
    assert bicubic.row()["method"] == "Bicubic"

    model = _tiny()
    _perturb(model, 0.02)
    state = torch.get_rng_state()
    irn = evaluate(model, data, num_draws=3, label="IRN")
    assert torch.equal(torch.get_rng_state(), state)  # the draws of z come from their own generator
    assert irn.hr_psnr.shape == (3, 2) and irn.spread > 0 and math.isfinite(irn.lr)
    assert irn.row()["method"] == "IRN" and irn.label == "IRN" and model.training  # the training mode is restored
    model.eval()
    evaluate(model, data, "valid", num_draws=1)
    assert not model.training  # ... and so is the eval mode
    zero = evaluate(model, data, num_draws=3, temperature=0.0)
    assert zero.hr_psnr.shape == (1, 2)
    valid = evaluate(model, data, "valid", num_draws=1, seed=3)
    assert valid.hr_psnr.shape == (1, 2) and valid.names == ("coffee", "astronaut")


def test_validation_psnr_is_one_draw_of_evaluate_and_restores_the_mode() -> None:
    data = _data()
    model = _tiny()
    _perturb(model, 0.02)
    hr, lr = validation_psnr(model, data.valid, seed=4)
    scores = evaluate(model, data, "valid", num_draws=1, seed=4)
    assert model.training
    assert hr == pytest.approx(scores.psnr, abs=1e-9) and lr == pytest.approx(scores.lr, abs=1e-9)


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
        eval_every=15,
    )
    result = train(config, _data(), progress=False)
    assert isinstance(result, IRNResult) and isinstance(result.model, IRN) and result.model.training
    losses = result.history["loss"]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    steps, hr = result.history.curve("val_psnr")
    assert steps == [0, 15, 30] and hr[-1] > hr[0]
    assert set(result.metrics) >= {"loss", "guide", "recon", "distr", "grad_norm", "val_psnr", "val_lr_psnr"}
    steps, lr = result.history.curve("val_lr_psnr")
    assert steps == [0, 15, 30] and 20 < lr[-1] < float("inf") and result.metrics["val_lr_psnr"] == lr[-1]
    assert result.num_parameters == count_parameters(build_model(config)) and result.seconds > 0


def test_tiny_sr_overfit_loss_falls_and_matches_the_irn_size() -> None:
    config = IRNConfig(
        model="sr",
        blocks_per_level=2,
        growth=8,
        subnet_depth=2,
        crop_size=16,
        batch_size=4,
        num_steps=30,
        lr=2e-3,
        lr_milestones=(),
    )
    result = train(config, _data(), progress=False)
    losses = result.history["loss"]
    assert sum(losses[-5:]) < sum(losses[:5]) and set(result.history.metrics) == {"loss", "grad_norm"}
    irn_size = count_parameters(build_model(dataclasses.replace(config, model="irn")))
    assert abs(result.num_parameters - irn_size) / irn_size < 0.1
    assert isinstance(result.model, SRNet)
    steps, lr = result.history.curve("val_lr_psnr")
    assert steps == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30] and math.isinf(lr[-1])  # bicubic LR: identical


def test_ablation_switches_reach_the_losses() -> None:
    """quantize=False and lambda_fit=0 change what is optimised (same seed, same first batch)."""
    base = dict(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=1, lr_milestones=())
    switches = {"base": {}, "no_fit": {"lambda_fit": 0.0}, "no_quant": {"quantize": False}}
    runs = {
        name: train(IRNConfig(**base, **extra), _data(2), progress=False)  # type: ignore[arg-type]
        for name, extra in switches.items()
    }
    assert runs["no_fit"].history["guide"] == [0.0] and runs["base"].history["guide"][0] > 0
    assert runs["no_quant"].history["recon"] != runs["base"].history["recon"]


def test_stopped_run_equals_the_full_run_snapshot_so_ablations_compare_exactly() -> None:
    """train(stop_after=k) reproduces the weights a full run had at step k (same seed, same schedule)."""
    config = IRNConfig(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=6)
    full = train(config, _data(2, 1), snapshots=[3], progress=False)
    short = train(dataclasses.replace(config, eval_every=0), _data(2, 1), stop_after=3, progress=False)
    assert len(short.history.steps) == 3 and len(full.history.steps) == 6
    assert short.history.evaluations == [] and len(full.history.evaluations) == 7
    for (name, a), b in zip(full.model_at(3).state_dict().items(), short.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    final, stopped = full.model.state_dict().values(), short.model.state_dict().values()
    assert any((a - b).abs().max() > 0 for a, b in zip(final, stopped))
    with pytest.raises(ValueError, match="step=4 is not valid; expected one of: 3"):
        full.model_at(4)
    with pytest.raises(ValueError, match=r"stop_after must be an integer in \[1, num_steps=6\]"):
        train(config, _data(2, 1), stop_after=7, progress=False)
    with pytest.raises(ValueError, match=r"snapshots must be steps in \[1, 3\]"):
        train(config, _data(2, 1), stop_after=3, snapshots=[5], progress=False)


def test_weight_average_is_the_documented_mix() -> None:
    """ema=0.5 after one step returns (initial weights + trained weights) / 2; ema=0 returns the trained weights."""
    base = dict(blocks_per_level=1, growth=4, subnet_depth=2, crop_size=16, batch_size=2, num_steps=1, lr_milestones=())
    plain = train(IRNConfig(**base, ema=0.0), _data(2), progress=False)  # type: ignore[arg-type]
    mixed = train(IRNConfig(**base, ema=0.5), _data(2), progress=False)  # type: ignore[arg-type]
    from reprobook.train import seed_everything

    seed_everything(0)
    initial = build_model(IRNConfig(**base))  # type: ignore[arg-type]
    for (name, w1), w0, w_avg in zip(
        plain.model.state_dict().items(), initial.state_dict().values(), mixed.model.state_dict().values()
    ):
        torch.testing.assert_close(w_avg, (w0 + w1) / 2, msg=name)
    trained, fresh = plain.model.state_dict().values(), initial.state_dict().values()
    assert any((w1 - w0).abs().max() > 0 for w1, w0 in zip(trained, fresh))


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
    test = [load_image("coffee")[:, :32, :40]]
    data = IRNData(train=ImageFiles(paths), valid=[test[0][:, :16, :16]], test=test, test_names=["coffee"])
    result = train(config, data, progress=False)
    assert result.model.scale == 4 and len(result.history.steps) == 2
    scores = evaluate(result.model, data, num_draws=2)  # type: ignore[arg-type]
    assert scores.hr_images[0].shape == (3, 32, 40) and scores.lr_images[0].shape == (3, 8, 10)


def test_colour_crops_are_the_plain_crops_with_shuffled_channels_and_dimmed() -> None:
    """``colour=True``: each crop is the plain crop (same photo, position, flip, turn) with its RGB channels
    permuted and scaled by one brightness factor in ``BRIGHTNESS_RANGE``; deterministic per ``(seed, i)``."""
    photo = torch.rand(3, 40, 50)
    plain, colour = (TrainingCrops([photo], 16, 30, seed=4, colour=c) for c in (False, True))
    low, high = BRIGHTNESS_RANGE
    permuted = 0
    for i in range(len(plain)):
        a, b = plain[i], colour[i]
        factor = (b.sum() / a.sum()).item()
        assert low - 1e-6 <= factor <= high + 1e-6
        matches = [p for p in itertools.permutations(range(3)) if torch.allclose(a[list(p)] * factor, b, atol=1e-5)]
        assert len(matches) == 1
        permuted += matches[0] != (0, 1, 2)
        assert torch.equal(b, colour[i])
    assert permuted > 10
