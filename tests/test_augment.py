"""Data augmentation: exact geometry of the deterministic core, the statistics of the random transforms, that
randomness comes only from the Generator passed in, and clear errors for bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convnp.data.augment import (
    Augment,
    _gaussian_matrix,
    affine_matrices,
    affine_transform,
    elastic_distortion,
    random_affine,
)

FLOATS = [np.float32, np.float64]


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def digits(rng: np.random.Generator, n: int, size: int = 28, dtype=np.float32) -> np.ndarray:
    """MNIST-like images ``(n, size, size, 1)``: two anti-aliased strokes inside the central 20 x 20 box."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    low, high = (size - 20) / 2 + 2, (size + 20) / 2 - 3  # stroke centres; the 1.5-px pen stays in the box
    out = np.empty((n, size, size, 1))
    for i in range(n):
        points = rng.uniform(low, high, size=(3, 2))
        dist = np.full((size, size), np.inf)
        for a, b in zip(points[:-1], points[1:]):  # distance from each pixel to segment a-b
            ab = b - a
            t = np.clip(((rows - a[0]) * ab[0] + (cols - a[1]) * ab[1]) / (ab @ ab + 1e-12), 0, 1)
            dist = np.minimum(dist, np.hypot(rows - a[0] - t * ab[0], cols - a[1] - t * ab[1]))
        out[i, :, :, 0] = np.clip(1.5 - dist, 0, 1)
    return out.astype(dtype)


def shifted(x: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``x`` moved down by ``dy`` and right by ``dx`` pixels, the uncovered band set to ``fill``."""
    N, H, W, C = x.shape
    out = np.full_like(x, fill)
    out[:, max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = x[
        :, max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


def centre_of_mass(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, 1)`` -> ``(N, 2)`` intensity-weighted mean ``(row, col)``."""
    img = x[..., 0].astype(np.float64)
    rows, cols = np.mgrid[0 : img.shape[1], 0 : img.shape[2]]
    mass = img.sum(axis=(1, 2))
    return np.stack([(img * rows).sum(axis=(1, 2)) / mass, (img * cols).sum(axis=(1, 2)) / mass], axis=1)


def in_range(out: np.ndarray, x: np.ndarray, fill: float) -> bool:
    fill = x.dtype.type(fill)  # the functions cast fill to the images' dtype
    return bool(out.min() >= min(x.min(), fill) and out.max() <= max(x.max(), fill))


def shift_matrix(dy: float, dx: float) -> np.ndarray:
    """Inverse map of a shift: output (i, j) reads input (i - dy, j - dx)."""
    return np.array([[1.0, 0.0, -dy], [0.0, 1.0, -dx]])


# ---------------------------------------------------------------------------------------------------------------
# Deterministic geometry
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dy, dx, fill", [(2, 0, 0.0), (0, -3, 0.0), (-1, 2, 0.5), (3, 3, -1.0), (7, 0, 2.0)])
def test_integer_shift_is_exact(dtype, dy, dx, fill):
    x = np.random.default_rng(0).random((3, 7, 6, 2)).astype(dtype)
    out = affine_transform(x, shift_matrix(dy, dx), fill=fill)
    np.testing.assert_array_equal(out, shifted(x, dy, dx, fill))


def test_integer_shift_per_sample():
    x = np.random.default_rng(1).random((3, 8, 8, 1))
    shifts = [(1, 0), (0, -2), (-3, 3)]
    out = affine_transform(x, np.stack([shift_matrix(*s) for s in shifts]))
    for i, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(out[i : i + 1], shifted(x[i : i + 1], dy, dx, 0.0))


def test_affine_matrices_shift_matches_the_inverse_map():
    np.testing.assert_allclose(affine_matrices(9, 5, shift=(2, -1))[0], shift_matrix(2, -1), atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_transform_is_identity(dtype):
    rng = np.random.default_rng(2)
    x = rng.random((4, 9, 11, 3)).astype(dtype)
    np.testing.assert_array_equal(affine_transform(x, affine_matrices(9, 11)), x)
    still = random_affine(x, rng, max_shift=0, max_rotation=0, scale_range=(1, 1))
    np.testing.assert_array_equal(still, x)
    np.testing.assert_array_equal(elastic_distortion(x, rng, alpha=0.0), x)
    np.testing.assert_array_equal(Augment(max_shift=0, max_rotation=0, scale_range=(1, 1))(x, rng), x)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size, channels", [(9, 1), (8, 3), (28, 1)])
def test_rotation_by_90_degrees_is_rot90(dtype, size, channels):
    x = np.random.default_rng(3).random((2, size, size, channels)).astype(dtype)
    for angle, k in [(90, 1), (-90, -1), (180, 2)]:
        out = affine_transform(x, affine_matrices(size, size, rotation=angle))
        np.testing.assert_allclose(out, np.rot90(x, k=k, axes=(1, 2)), atol=1e-5, err_msg=f"rotation={angle}")


def test_positive_rotation_is_counter_clockwise_as_displayed():
    x = np.zeros((1, 5, 5, 1))
    x[0, 0, 2] = 1.0  # a dot at the top centre ...
    out = affine_transform(x, affine_matrices(5, 5, rotation=90))
    assert np.unravel_index(out[0, :, :, 0].argmax(), (5, 5)) == (2, 0)  # ... turns to the left centre


@pytest.mark.parametrize("scale", [0.7, 1.3, 2.0])
def test_scaling_keeps_the_centre_pixel(scale):
    x = np.random.default_rng(4).random((3, 9, 9, 2)).astype(np.float32)
    out = affine_transform(x, affine_matrices(9, 9, scale=scale))
    np.testing.assert_allclose(out[:, 4, 4], x[:, 4, 4], atol=1e-6)
    assert not np.allclose(out, x)


def test_scaling_a_centred_blob_keeps_its_centre_of_mass():
    rows, cols = np.mgrid[0:28, 0:28]
    blob = np.exp(-((rows - 13.5) ** 2 + (cols - 13.5) ** 2) / 18.0)[None, :, :, None]
    for scale in (0.8, 1.25):
        out = affine_transform(blob, affine_matrices(28, 28, scale=scale))
        np.testing.assert_allclose(centre_of_mass(out), [[13.5, 13.5]], atol=1e-9)
        # area grows as scale**2; bilinear sampling of a smooth blob keeps that to a fraction of a percent
        np.testing.assert_allclose(out.sum() / blob.sum(), scale**2, rtol=5e-3)


@pytest.mark.parametrize("dy, dx", [(2, -1), (1.5, -2.25), (-0.3, 0.8)])
def test_shifted_digit_keeps_its_label_geometry(dy, dx):
    # The content only moves: its ink and shape are kept and its centre of mass moves by the shift, so the
    # label still applies. Bilinear interpolation is linear, hence exact for the centre of mass of inner content.
    x = digits(np.random.default_rng(5), 6, dtype=np.float64)
    out = affine_transform(x, shift_matrix(dy, dx))
    np.testing.assert_allclose(centre_of_mass(out) - centre_of_mass(x), np.tile([dy, dx], (6, 1)), atol=1e-9)
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), x.sum(axis=(1, 2, 3)), rtol=1e-12)


def test_gaussian_matrix_is_the_reflected_tap_convolution():
    rng = np.random.default_rng(6)
    for size, sigma in [(28, 4.0), (10, 1.5), (5, 3.0), (1, 2.0)]:
        signal = rng.random((3, size))
        radius = int(4 * sigma + 0.5)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps /= taps.sum()
        padded = np.pad(signal, ((0, 0), (radius, radius)), mode="symmetric")  # scipy's "reflect"
        expected = sum(w * padded[:, k : k + size] for k, w in enumerate(taps))
        matrix = _gaussian_matrix(size, sigma, np.dtype(np.float64))
        np.testing.assert_allclose(signal @ matrix.T, expected, atol=1e-12)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)


def test_matches_torch_grid_sample():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.random((5, 12, 10, 3))
    matrices = affine_matrices(12, 10, shift=rng.uniform(-4, 4, (5, 2)), rotation=rng.uniform(-60, 60, 5),
                               scale=rng.uniform(0.6, 1.5, 5))
    out = affine_transform(x, matrices)
    # grid_sample wants (x, y) = (col, row) source positions normalised to [-1, 1] (align_corners=True)
    rows, cols = np.mgrid[0:12, 0:10]
    src = matrices @ np.stack([rows.ravel(), cols.ravel(), np.ones(120)])  # (5, 2, 120)
    grid = np.stack([src[:, 1] / 9 * 2 - 1, src[:, 0] / 11 * 2 - 1], axis=-1).reshape(5, 12, 10, 2)
    ref = torch.nn.functional.grid_sample(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(grid), mode="bilinear",
        padding_mode="zeros", align_corners=True,
    ).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, ref, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# Random transforms: range, shape, dtype, reproducibility
# ---------------------------------------------------------------------------------------------------------------

TRANSFORMS = {
    "random_affine": lambda x, rng, fill: random_affine(x, rng, fill=fill),
    "random_affine_wide": lambda x, rng, fill: random_affine(
        x, rng, max_shift=6, max_rotation=180, scale_range=(0.5, 2.0), fill=fill
    ),
    "elastic": lambda x, rng, fill: elastic_distortion(x, rng, fill=fill),
    "elastic_rough": lambda x, rng, fill: elastic_distortion(x, rng, alpha=8.0, sigma=0.7, fill=fill),
    "Augment": lambda x, rng, fill: Augment(elastic=(34.0, 4.0), fill=fill, p=0.7)(x, rng),
}


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fill", [0.0, -0.5, 0.25, 3.0])
def test_values_stay_in_range_and_shape_and_dtype_are_kept(name, dtype, fill):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((16, 14, 13, 2)) * 0.7).astype(dtype)
    out = TRANSFORMS[name](x, rng, fill)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert in_range(out, x, fill), (out.min(), out.max(), x.min(), x.max(), fill)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_same_seed_same_output_different_seed_different_output(name):
    x = digits(np.random.default_rng(9), 8)
    first = TRANSFORMS[name](x, np.random.default_rng(42), 0.0)
    again = TRANSFORMS[name](x, np.random.default_rng(42), 0.0)
    other = TRANSFORMS[name](x, np.random.default_rng(43), 0.0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_global_random_state_and_input_are_untouched(name):
    x = digits(np.random.default_rng(10), 4)
    x_before = x.copy()
    state = np.random.get_state()
    TRANSFORMS[name](x, np.random.default_rng(0), 0.0)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    np.testing.assert_array_equal(x, x_before)


# ---------------------------------------------------------------------------------------------------------------
# Image statistics of augmented digits
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform, per_digit",
    [
        (lambda x, rng: random_affine(x, rng), (0.78, 1.25)),  # scaling alone changes the ink by 0.9**2 .. 1.1**2
        # Simard's field also squeezes or stretches thin strokes (its divergence), so per digit only a loose
        # bound holds: the ink neither vanishes nor multiplies; the batch mean is what stays put
        (lambda x, rng: elastic_distortion(x, rng), (0.3, 3.0)),
        (lambda x, rng: Augment(elastic=(34.0, 4.0))(x, rng), (0.3, 3.0)),
    ],
    ids=["random_affine", "elastic", "Augment+elastic"],
)
def test_mean_intensity_is_kept(transform, per_digit):
    x = digits(np.random.default_rng(11), 128)
    out = transform(x, np.random.default_rng(12))
    assert abs(out.mean() / x.mean() - 1) < 0.03
    ratio = out.sum(axis=(1, 2, 3)) / x.sum(axis=(1, 2, 3))
    assert per_digit[0] < ratio.min() and ratio.max() < per_digit[1], (ratio.min(), ratio.max())


def test_no_ink_lost_off_canvas_with_max_shift_2():
    x = digits(np.random.default_rng(13), 64, dtype=np.float64)
    out = random_affine(x, np.random.default_rng(14), max_shift=2.0, max_rotation=0.0, scale_range=(1.0, 1.0))
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), x.sum(axis=(1, 2, 3)), rtol=1e-10)
    moved = centre_of_mass(out) - centre_of_mass(x)
    assert np.abs(moved).max() <= 2.0 + 1e-9 and np.abs(moved).max() > 0.5
    # with the default rotation and scaling too, the one-pixel border stays empty: nothing reaches the edge
    out = random_affine(x, np.random.default_rng(15), max_shift=2.0)
    border = np.ones((28, 28), bool)
    border[1:-1, 1:-1] = False
    assert out[:, border].max() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# Elastic distortion
# ---------------------------------------------------------------------------------------------------------------


def _displacements(alpha: float, sigma: float, size: int = 64, margin: int = 14, n: int = 6) -> np.ndarray:
    """Measure the displacement field: a ramp image (channel 0 = row, 1 = col) is interpolated exactly by
    bilinear sampling, so output - input is the displacement wherever the source stayed inside the image."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    ramp = np.broadcast_to(np.stack([rows, cols], axis=-1), (n, size, size, 2))
    out = elastic_distortion(np.ascontiguousarray(ramp), np.random.default_rng(16), alpha=alpha, sigma=sigma)
    return (out - ramp)[:, margin:-margin, margin:-margin]  # (n, h, w, 2) in the interior


def test_elastic_field_is_smooth_and_as_large_as_documented():
    d = _displacements(alpha=34.0, sigma=4.0)
    assert np.abs(d).max() < 12  # the interior margin kept every source inside the image
    along_w = np.corrcoef(d[:, :, :-1].ravel(), d[:, :, 1:].ravel())[0, 1]
    along_h = np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1]
    assert along_w > 0.95 and along_h > 0.95  # a Gaussian of std 4 gives exp(-1/64) = 0.98
    # std alpha / (2 sigma sqrt(3 pi)), as the docstring says
    np.testing.assert_allclose(d.std(), 34.0 / (2 * 4.0 * np.sqrt(3 * np.pi)), rtol=0.15)
    rough = _displacements(alpha=34.0, sigma=0.5)
    assert np.corrcoef(rough[:, :, :-1].ravel(), rough[:, :, 1:].ravel())[0, 1] < 0.6  # contrast: little smoothing


def test_elastic_alpha_zero_is_identity():
    x = digits(np.random.default_rng(17), 4)
    np.testing.assert_array_equal(elastic_distortion(x, np.random.default_rng(0), alpha=0.0), x)


# ---------------------------------------------------------------------------------------------------------------
# Augment: probability, config, composition
# ---------------------------------------------------------------------------------------------------------------


def test_p_zero_returns_the_input_unchanged():
    x = digits(np.random.default_rng(18), 8)
    out = Augment(elastic=(34.0, 4.0), p=0.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, x)
    assert out is not x


def test_p_transforms_about_that_fraction_and_leaves_the_rest_exactly():
    x = digits(np.random.default_rng(19), 200, size=12)
    out = Augment(max_shift=2.0, p=0.3)(x, np.random.default_rng(1))
    same = np.all(out == x, axis=(1, 2, 3))
    assert 30 <= (~same).sum() <= 90  # binomial(200, 0.3): mean 60, sd 6.5


def test_augment_without_elastic_equals_random_affine():
    x = digits(np.random.default_rng(20), 8)
    a = Augment(max_shift=3.0, max_rotation=15.0, scale_range=(0.8, 1.2), fill=0.1)(x, np.random.default_rng(5))
    b = random_affine(x, np.random.default_rng(5), max_shift=3.0, max_rotation=15.0, scale_range=(0.8, 1.2), fill=0.1)
    np.testing.assert_array_equal(a, b)


def test_config_round_trips_through_json():
    augment = Augment(max_shift=1.5, max_rotation=5, scale_range=(0.95, 1.05), elastic=(20, 3), fill=-0.42, p=0.8)
    config = json.loads(json.dumps(augment.get_config()))
    assert config == augment.get_config()
    again = Augment.from_config(config)
    assert again.get_config() == augment.get_config()
    x = digits(np.random.default_rng(21), 4)
    np.testing.assert_array_equal(augment(x, np.random.default_rng(3)), again(x, np.random.default_rng(3)))
    assert Augment.from_config({}).get_config() == Augment().get_config()


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_shift": -1}, r"max_shift must be >= 0.0, got -1"),
        ({"max_rotation": -5.0}, r"max_rotation must be >= 0.0, got -5.0"),
        ({"scale_range": (1.1, 0.9)}, r"scale_range must satisfy 0 < low <= high, got \(1.1, 0.9\)"),
        ({"scale_range": (0.0, 1.0)}, r"scale_range must satisfy 0 < low <= high"),
        ({"scale_range": (-1.0, 1.0)}, r"scale_range must satisfy 0 < low <= high"),
        ({"scale_range": 1.0}, r"scale_range must be a pair \(low, high\), got 1.0"),
        ({"fill": float("nan")}, r"fill must be a finite number, got nan"),
        ({"max_shift": True}, r"max_shift must be a finite number, got True"),
    ],
)
def test_bad_affine_arguments_are_refused(kwargs, match):
    x = np.zeros((2, 5, 5, 1), np.float32)
    with pytest.raises(ValueError, match=match):
        random_affine(x, np.random.default_rng(0), **kwargs)
    with pytest.raises(ValueError, match=match):
        Augment(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p": 1.5}, r"p must be a probability in \[0, 1\], got 1.5"),
        ({"p": -0.1}, r"p must be a probability in \[0, 1\], got -0.1"),
        ({"elastic": (34.0,)}, r"elastic must be None or a pair \(alpha, sigma\)"),
        ({"elastic": (34.0, 0.0)}, r"sigma must be > 0, got 0.0"),
        ({"elastic": (-1.0, 4.0)}, r"alpha must be >= 0.0, got -1.0"),
    ],
)
def test_bad_augment_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Augment(**kwargs)


def test_bad_elastic_arguments_are_refused():
    x = np.zeros((2, 5, 5, 1))
    with pytest.raises(ValueError, match=r"elastic_distortion: sigma must be > 0, got -2"):
        elastic_distortion(x, np.random.default_rng(0), sigma=-2)
    with pytest.raises(ValueError, match=r"elastic_distortion: alpha must be >= 0.0, got -3"):
        elastic_distortion(x, np.random.default_rng(0), alpha=-3)


def test_bad_images_rng_and_matrices_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"random_affine: expected input of rank 4 with shape \(N, H, W, C\), "
                                         r"got shape \(2, 5, 5\)"):
        random_affine(np.zeros((2, 5, 5)), rng)
    with pytest.raises(ValueError, match=r"expected float32 or float64 input, got uint8; cast it with x.astype"):
        random_affine(np.zeros((2, 5, 5, 1), np.uint8), rng)
    with pytest.raises(TypeError, match=r"expected a NumPy array of shape \(N, H, W, C\), got list"):
        elastic_distortion([[0.0]], rng)
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator .*got RandomState"):
        random_affine(np.zeros((2, 5, 5, 1)), np.random.RandomState(0))
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator .*got NoneType"):
        Augment()(np.zeros((2, 5, 5, 1)), None)
    with pytest.raises(ValueError, match=r"matrices must have shape \(N, 2, 3\) with N = 2 .*got \(3, 2, 3\)"):
        affine_transform(np.zeros((2, 5, 5, 1)), np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match=r"matrices must be finite"):
        affine_transform(np.zeros((2, 5, 5, 1)), np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match=r"fill must fit in the images' dtype float32, got 1e\+300"):
        affine_transform(np.zeros((2, 5, 5, 1), np.float32), shift_matrix(0, 0), fill=1e300)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['max_shfit'\]"):
        Augment.from_config({"max_shfit": 2.0})


# ---------------------------------------------------------------------------------------------------------------
# Property test
# ---------------------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no clock
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12), st.integers(1, 3)),
    dtype=st.sampled_from(FLOATS),
    max_shift=st.floats(0, 8),
    max_rotation=st.floats(0, 180),
    scale=st.tuples(st.floats(0.2, 3), st.floats(0, 2)),
    elastic=st.none() | st.tuples(st.floats(0, 50), st.floats(0.1, 6)),
    fill=st.floats(-2, 2),
    p=st.floats(0, 1),
)
def test_property_shape_dtype_and_range(seed, shape, dtype, max_shift, max_rotation, scale, elastic, fill, p):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 3)).astype(dtype)
    scale_range = (scale[0], scale[0] + scale[1])
    augment = Augment(max_shift, max_rotation, scale_range, elastic=elastic, fill=fill, p=p)
    outputs = [
        augment(x, rng),
        random_affine(x, rng, max_shift=max_shift, max_rotation=max_rotation, scale_range=scale_range, fill=fill),
    ]
    if elastic is not None:
        outputs.append(elastic_distortion(x, rng, alpha=elastic[0], sigma=elastic[1], fill=fill))
    for out in outputs:
        assert out.shape == x.shape and out.dtype == x.dtype
        assert in_range(out, x, fill)
