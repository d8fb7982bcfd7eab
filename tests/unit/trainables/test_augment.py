"""Unit tests for hmtl.trainables.augment: shapes, determinism, flip, magnitude 0, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hmtl.trainables.augment import LEVELS, _blur3x3, augment, normalize

RANDOM_LEVELS = ("none", "weak", "strong")


def _batch(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    # torch.testing.assert_close spends ~0.5 s on lazy imports at its first call.
    assert actual.shape == expected.shape
    assert float((actual - expected).abs().max()) <= atol


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("shape", "out_size"),
    [((8, 1, 48, 48), None), ((8, 1, 48, 48), 64), ((8, 3, 64, 64), None), ((8, 3, 64, 64), 48)],
)
def test_shape_dtype_range(level, shape, out_size):
    n, c, size, _ = shape
    y = augment(_batch(n, c, size), level, out_size=out_size, generator=_gen(1))
    out = size if out_size is None else out_size
    assert y.shape == (n, c, out, out)
    assert y.dtype == torch.float32
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_eval_is_deterministic_and_draws_nothing():
    x = _batch(8, 3, 64)
    g = _gen(3)
    state = g.get_state()
    a = augment(x, "eval", generator=g)
    assert torch.equal(g.get_state(), state)
    assert torch.equal(a, augment(x, "eval"))
    assert torch.equal(a, augment(x, "eval", generator=_gen(99)))


@pytest.mark.parametrize("level", RANDOM_LEVELS)
def test_same_seed_same_output_other_seed_differs(level):
    x = _batch(8, 3, 64)
    a = augment(x, level, generator=_gen(5))
    assert torch.equal(a, augment(x, level, generator=_gen(5)))
    assert not torch.equal(a, augment(x, level, generator=_gen(6)))


def test_global_rng_when_no_generator():
    x = _batch(8, 1, 48)
    torch.manual_seed(11)
    a = augment(x, "strong")
    torch.manual_seed(11)
    assert torch.equal(a, augment(x, "strong"))


def test_none_flips_about_half_the_time():
    x = torch.zeros(64, 1, 48, 48, dtype=torch.uint8)
    x[..., :24] = 255  # bright left half
    y = augment(x, "none", generator=_gen(0))
    left, right = y[..., :12].mean(dim=(1, 2, 3)), y[..., -12:].mean(dim=(1, 2, 3))
    bright_left = (left > 0.99) & (right < 0.01)
    bright_right = (right > 0.99) & (left < 0.01)
    assert bool((bright_left | bright_right).all())
    assert 0 < int(bright_left.sum()) < 64


def test_none_on_symmetric_image_equals_centre_crop():
    half = _batch(16, 1, 48)[..., :24]
    x = torch.cat([half, half.flip(-1)], dim=-1)  # mirror-symmetric about the vertical axis
    y = augment(x, "none", generator=_gen(0))
    theta = torch.tensor([[0.69, 0.0, 0.0], [0.0, 0.69, 0.0]]).expand(16, 2, 3)
    grid = F.affine_grid(theta, [16, 1, 48, 48], align_corners=False)
    expected = F.grid_sample(x.float() / 255, grid, padding_mode="border", align_corners=False)
    _assert_close(y, expected)


def test_weak_never_flips():
    x = torch.zeros(32, 1, 48, 48, dtype=torch.uint8)
    x[..., :24] = 255
    y = augment(x, "weak", generator=_gen(0))
    assert bool((y[..., :12].mean(dim=(1, 2, 3)) > y[..., -12:].mean(dim=(1, 2, 3))).all())


def test_strong_magnitude_zero_is_a_099_crop_without_photometric_change():
    # Channel 0 ramps along x, channel 1 along y, channel 2 is flat. Bilinear sampling of a ramp
    # is exact, so the output must be the ramp sampled at 0.99 * out + shift for a per-sample
    # shift with |shift| <= 0.01 (the crop's slack), with no rotation, noise, blur or cutout.
    n, size = 8, 64
    ramp = torch.arange(size, dtype=torch.uint8) * 4
    x = torch.empty(n, 3, size, size, dtype=torch.uint8)
    x[:, 0] = ramp.view(1, size)
    x[:, 1] = ramp.view(size, 1)
    x[:, 2] = 128
    y = augment(x, "strong", magnitude=0.0, generator=_gen(2))
    pos = (2 * torch.arange(size) + 1) / size - 1  # output pixel centres, normalised

    def ramp_at(norm: torch.Tensor) -> torch.Tensor:  # value of the ramp at normalised coords
        return 4 * ((norm + 1) * size - 1) / 2 / 255

    # No rotation: the x ramp is constant down each column, the y ramp along each row.
    assert float((y[:, 0] - y[:, 0, :1, :]).abs().max()) < 1e-5
    assert float((y[:, 1] - y[:, 1, :, :1]).abs().max()) < 1e-5
    for profile in (y[:, 0, 0, :], y[:, 1, :, 0]):
        shift = (profile - ramp_at(0.99 * pos)).mean(dim=1) / (4 * size / 2 / 255)
        assert float(shift.abs().max()) <= 0.01 + 1e-5
        expected = ramp_at(0.99 * pos + shift[:, None])
        _assert_close(profile, expected)
    _assert_close(y[:, 2], torch.full_like(y[:, 2], 128 / 255), atol=1e-6)


def test_strong_has_a_constant_cutout_square():
    y = augment(_batch(8, 1, 48), "strong", generator=_gen(4))
    side = 8  # 48 / 6
    windows = F.unfold(y, side)  # (N, side*side, positions)
    flat = windows.std(dim=1) < 1e-6
    assert bool(flat.any(dim=1).all())


@pytest.mark.parametrize("level", LEVELS)
def test_non_contiguous_and_channels_last(level):
    x = _batch(8, 3, 64)
    expected = augment(x, level, generator=_gen(7))
    cl = x.contiguous(memory_format=torch.channels_last)
    _assert_close(augment(cl, level, generator=_gen(7)), expected)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, transposed strides
    assert not xt.is_contiguous()
    _assert_close(augment(xt, level, generator=_gen(7)), expected)


def test_invalid_level_and_magnitude():
    x = _batch(2, 1, 48)
    with pytest.raises(ValueError, match=r"medium.*strong"):
        augment(x, "medium")
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="magnitude"):
            augment(x, "strong", magnitude=bad)


def test_normalize():
    x = torch.full((2, 3, 4, 4), 0.5)
    y = normalize(x)
    _assert_close(y[:, 0], torch.full((2, 4, 4), (0.5 - 0.485) / 0.229))
    _assert_close(normalize(torch.full((2, 1, 4, 4), 0.75)), torch.ones(2, 1, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        normalize(torch.zeros(1, 2, 4, 4))


def test_blur_matches_a_depthwise_gaussian_conv():
    x = torch.rand(4, 3, 16, 16)
    t = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    kernel = (torch.outer(g, g) / torch.outer(g, g).sum()).expand(3, 1, 3, 3)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    _assert_close(_blur3x3(x, 1.5), expected, atol=1e-6)
