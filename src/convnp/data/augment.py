"""On-the-fly data augmentation: random affine maps and elastic distortion of image batches (digits), and random
crop with padding, horizontal flip and brightness/contrast jitter (photos, :class:`NaturalAugment`).

Every function works on a whole batch of channels-last images ``(N, H, W, C)`` in float32 or float64, keeps the
shape and the dtype, and draws its randomness only from the ``np.random.Generator`` it is given.

Conventions
-----------
Coordinates are ``(row, col)``; pixel ``(i, j)`` has its centre at ``(i, j)``, so the top-left pixel centre is
``(0, 0)`` and the image centre is ``((H - 1) / 2, (W - 1) / 2)``. Rows grow downwards.

Transforms are applied by *inverse mapping*: for each output pixel ``p`` the source position ``q = M p`` is
computed and the input is read there by bilinear interpolation. The input is treated as surrounded by ``fill``,
so positions within one pixel of the border blend edge pixels with ``fill`` and positions further out read
``fill`` exactly (OpenCV's ``BORDER_CONSTANT``, PyTorch's ``grid_sample(..., padding_mode="zeros")`` when
``fill=0``).

A positive rotation turns the picture counter-clockwise as it is displayed (rows downwards), the direction of
``np.rot90(x, k=1, axes=(1, 2))``. A positive shift moves the content down (rows) and right (columns). A scale
above 1 enlarges the content.

References
----------
1) P. Y. Simard, D. Steinkraus, J. C. Platt, "Best practices for convolutional neural networks applied to visual
   document analysis", ICDAR 2003, section 2 (affine and elastic distortions).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from convnp._checks import check_input

__all__ = [
    "Augment", "Chain", "NaturalAugment", "affine_matrices", "affine_transform", "color_jitter", "elastic_distortion",
    "random_affine", "random_crop", "random_hflip",
]

_LAYOUT = "(N, H, W, C)"


# ---------------------------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------------------------


def _check_images(x, owner: str) -> np.ndarray:
    x = check_input(x, owner, ndim=4, trailing=None, dtype=None, layout=_LAYOUT, finite=False)
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{owner}: expected images of shape {_LAYOUT} with H, W >= 1, got shape {x.shape}")
    return x


def _check_rng(rng, owner: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{owner}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def _real(value, name: str, owner: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """Check that ``value`` is a finite real number (not a bool), ``>= minimum`` or ``> 0`` when asked."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return float(value)


def _fill_value(fill, dtype: np.dtype, owner: str):
    fill = _real(fill, "fill", owner)
    with np.errstate(over="ignore"):
        cast = dtype.type(fill)
    if not np.isfinite(cast):
        raise ValueError(f"{owner}: fill must fit in the images' dtype {dtype}, got {fill!r}")
    return cast


def _affine_args(max_shift, max_rotation, scale_range, owner: str) -> tuple[float, float, tuple[float, float]]:
    max_shift = _real(max_shift, "max_shift", owner, minimum=0.0)
    max_rotation = _real(max_rotation, "max_rotation", owner, minimum=0.0)
    if not isinstance(scale_range, (tuple, list, np.ndarray)) or len(scale_range) != 2:
        raise ValueError(f"{owner}: scale_range must be a pair (low, high), got {scale_range!r}")
    low, high = (_real(s, "scale_range", owner) for s in scale_range)
    if not 0 < low <= high:
        raise ValueError(f"{owner}: scale_range must satisfy 0 < low <= high, got {tuple(scale_range)!r}")
    return max_shift, max_rotation, (low, high)


def _elastic_args(alpha, sigma, owner: str) -> tuple[float, float]:
    return _real(alpha, "alpha", owner, minimum=0.0), _real(sigma, "sigma", owner, positive=True)


# ---------------------------------------------------------------------------------------------------------------
# Cached geometry (one per image size; training sees one size, so the caches hold one or two entries)
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _base_grid(height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """Homogeneous pixel coordinates ``[row, col, 1]`` of every output pixel, shape ``(3, H * W)``, read-only."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(height * width)]).astype(dtype)  # (3, H*W)
    grid.flags.writeable = False
    return grid


@functools.lru_cache(maxsize=16)
def _gaussian_matrix(size: int, sigma: float, dtype: np.dtype) -> np.ndarray:
    """The 1-D Gaussian smoothing of a length-``size`` signal as a ``(size, size)`` matrix, read-only.

    Row ``i`` holds the taps ``w[k] ∝ exp(-k² / 2σ²)``, ``|k| <= round(4σ)``, normalised to sum 1, placed at the
    source indices ``i + k`` reflected at the ends (``d c b a | a b c d``, scipy.ndimage's default ``"reflect"``),
    so a constant signal stays constant. Applying it is the tap-by-tap convolution with that boundary, done as one
    small matrix product: for ``size = 28`` and ``σ = 4`` that is 28 multiply-adds per output value instead of 33 taps.
    """
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate=4.0
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    source = np.arange(size)[:, None] + taps[None, :]  # (size, 2r+1) unreflected source indices
    source = np.mod(source, 2 * size)  # reflection has period 2 * size ...
    source = np.where(source >= size, 2 * size - 1 - source, source)  # ... and mirrors the second half
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.repeat(np.arange(size), taps.size), source.ravel()), np.tile(weights, size))
    matrix = matrix.astype(dtype)
    matrix.flags.writeable = False
    return matrix


# ---------------------------------------------------------------------------------------------------------------
# Stateless core
# ---------------------------------------------------------------------------------------------------------------


def _source_coords(matrices: np.ndarray, height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """Source positions ``M p`` of every output pixel: ``(N, 2, 3)`` matrices -> ``(N, 2, H, W)`` of ``dtype``."""
    # In the images' dtype: float32 positions are exact for integer maps and ample for the rest, and halve the
    # memory traffic of the float32 batches that training uses.
    coords = matrices.astype(dtype) @ _base_grid(height, width, dtype)  # (N, 2, 3) @ (3, H*W) -> (N, 2, H*W)
    return coords.reshape(len(matrices), 2, height, width)


def _bilinear_sample(x: np.ndarray, coords: np.ndarray, fill) -> np.ndarray:
    """Read ``x`` at fractional positions by bilinear interpolation; outside the image it is ``fill``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    coords : ndarray of shape `(N, 2, H, W)`, x's dtype
        Finite source ``(row, col)`` of each output pixel. Used as scratch space: overwritten.
    fill : scalar of x's dtype

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, x's dtype

    Notes
    -----
    Most steps work in place: each batch-sized temporary costs fresh pages on every call (on the test VM the
    page faults took as long as the arithmetic), so fewer buffers is faster.
    """
    W, C = x.shape[2:]
    flat = _framed(x, fill)  # (N*(H+3)*(W+3)*C,)
    index, spare = _corner_index(coords, x.shape)  # (N, H, W, C); coords now hold the fractions
    fr, fc = coords[:, 0, :, :, None], coords[:, 1, :, :, None]  # (N, H, W, 1)
    out = _blend(flat, index, fr, fc, spare, row_step=(W + 3) * C, C=C)
    # The weights are convex, but rounding can step an ulp past the corners' range (even (1 - t) f + t f > f);
    # clipping makes the promise exact: the output stays within [min(x, fill), max(x, fill)].
    np.clip(out, min(x.min(), fill), max(x.max(), fill), out=out)
    return out


def _framed(x: np.ndarray, fill) -> np.ndarray:
    """``x`` `(N, H, W, C)` in a frame of ``fill``, one pixel before and two after, flattened to
    `(N * (H+3) * (W+3) * C,)`.

    With the frame every corner that :func:`_bilinear_sample` reads is valid: no masks, and blends with ``fill`` at
    the border come free.
    """
    N, H, W, C = x.shape
    padded = np.full((N, H + 3, W + 3, C), fill, dtype=x.dtype)
    padded[:, 1 : H + 1, 1 : W + 1] = x
    return padded.reshape(-1)  # (N*(H+3)*(W+3)*C,)


def _corner_index(coords: np.ndarray, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The flat index into :func:`_framed`'s array of each output value's top-left corner.

    Parameters
    ----------
    coords : ndarray of shape `(N, 2, H, W)`
        Source ``(row, col)`` of each output pixel in ``x``'s coordinates; on return, the fractions in [0, 1] of
        each position past its top-left corner (overwritten in place).
    shape : (N, H, W, C), the shape of ``x``

    Returns
    -------
    index : ndarray of shape `(N, H, W, C)`, intp
        The corner's neighbours are ``+C``, ``+(W+3)*C`` and ``+(W+4)*C``.
    spare : ndarray of shape `(N, H, W, 1)`
        Scratch space of the corners' float dtype, spent: free for the caller to reuse.
    """
    N, H, W, C = shape
    Hp, Wp = H + 3, W + 3
    coords += 1  # into the frame's coordinates
    # Beyond one pixel outside only the frame is read, so clip there: row 0 and rows H + 1, H + 2 are all fill.
    if H == W:
        np.clip(coords, 0, H + 1, out=coords)  # one pass (scalar bounds are several times faster than arrays)
    else:
        np.clip(coords[:, 0], 0, H + 1, out=coords[:, 0])
        np.clip(coords[:, 1], 0, W + 1, out=coords[:, 1])
    # Corners stay float until the flat index is formed: float floor/subtract/multiply are several times faster
    # than their int64 counterparts, and the in-frame index (< Hp * Wp) is exact in float32 up to 4093 x 4093.
    corner = np.floor(coords if Hp * Wp < 2**24 else coords.astype(np.float64))  # (N, 2, H, W) top-left corners
    coords -= corner  # the fractions, in [0, 1]
    corner[:, 0] *= Wp
    corner[:, 0] += corner[:, 1]
    index = corner[:, 0].astype(np.intp)  # (N, H, W)
    index += (np.arange(N, dtype=np.intp) * (Hp * Wp))[:, None, None]
    index = index[..., None] if C == 1 else index[..., None] * C + np.arange(C)  # (N, H, W, C)
    return index, corner[:, 1, :, :, None]  # (N, H, W, 1): the column corners, spent


def _blend(flat: np.ndarray, index: np.ndarray, fr: np.ndarray, fc: np.ndarray, spare: np.ndarray, *,
           row_step: int, C: int) -> np.ndarray:
    """The bilinear blend of the four corners at ``index``, ``+C``, ``+row_step``, ``+row_step + C`` of ``flat``.

    ``fr`` and ``fc`` `(N, H, W, 1)` are the row and column fractions; ``spare`` `(N, H, W, 1)` is scratch space for
    the weights; ``index`` `(N, H, W, C)` is used up. Returns `(N, H, W, C)`, ``flat``'s dtype.

    Blends as (1 - t) a + t b, which returns a exactly when t = 0 (integer shifts stay exact). The indices are in
    range by construction, and mode="clip" lets `take` write straight into `out`.
    """
    weight = np.subtract(1, fc, out=spare)  # (N, H, W, 1)
    top = flat.take(index, mode="clip")  # (N, H, W, C)
    index += C
    other = flat.take(index, mode="clip")
    top *= weight
    other *= fc
    top += other
    index += row_step - C
    bottom = flat.take(index, mode="clip")
    index += C
    flat.take(index, mode="clip", out=other)
    bottom *= weight
    other *= fc
    bottom += other
    np.subtract(1, fr, out=weight)
    top *= weight
    bottom *= fr
    top += bottom
    return top


def _validated_matrices(matrices, n: int, owner: str) -> np.ndarray:
    m = np.asarray(matrices, dtype=np.float64)
    if m.shape in ((2, 3), (1, 2, 3)):
        m = np.broadcast_to(m, (n, 2, 3))  # one map for the whole batch
    if m.shape != (n, 2, 3):
        raise ValueError(
            f"{owner}: matrices must have shape (N, 2, 3) with N = {n} (the batch size), (1, 2, 3) or (2, 3), "
            f"got {m.shape}"
        )
    if not np.isfinite(m).all():
        raise ValueError(f"{owner}: matrices must be finite, got NaN or infinity")
    return m


def affine_matrices(height: int, width: int, shift=(0.0, 0.0), rotation=0.0, scale=1.0) -> np.ndarray:
    """Build the inverse maps of shifts, rotations and scalings about the image centre.

    The forward transform scales by ``s`` and rotates by ``θ`` about the centre ``c``, then shifts by ``t``;
    its inverse, which :func:`affine_transform` applies, maps an output pixel ``p`` to the source

        q = A (p - c - t) + c,    A = (1 / s) [[cos θ, sin θ], [-sin θ, cos θ]]   in (row, col).

    Parameters
    ----------
    height, width : int
        Image size ``H, W``; the centre is ``((H - 1) / 2, (W - 1) / 2)``.
    shift : array_like of shape `(2,)` or `(N, 2)`
        ``(rows, cols)`` in pixels; positive moves the content down and right.
    rotation : float or array_like of shape `(N,)`
        Degrees; positive turns the picture counter-clockwise as displayed (like ``np.rot90``).
    scale : float or array_like of shape `(N,)`
        Isotropic factor, > 0; above 1 enlarges the content.

    Returns
    -------
    ndarray of shape `(N, 2, 3)`, float64
        ``N`` is the broadcast batch size of the arguments (1 when all are scalars or single values).
    """
    shift = np.atleast_2d(np.asarray(shift, dtype=np.float64))  # (N, 2)
    theta = np.deg2rad(np.atleast_1d(np.asarray(rotation, dtype=np.float64)))  # (N,)
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))  # (N,)
    if shift.ndim != 2 or shift.shape[1] != 2:
        raise ValueError(f"affine_matrices: shift must have shape (2,) or (N, 2), got {np.shape(shift)}")
    if theta.ndim != 1 or scale.ndim != 1:
        raise ValueError(
            f"affine_matrices: rotation and scale must be scalars or of shape (N,), "
            f"got {theta.shape} and {scale.shape}"
        )
    if not (scale > 0).all():
        raise ValueError(f"affine_matrices: scale must be > 0, got {scale[~(scale > 0)][:3].tolist()}")
    n = np.broadcast_shapes(shift.shape[:1], theta.shape, scale.shape)[0]
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    linear = np.empty((n, 2, 2))
    linear[:, 0, 0], linear[:, 0, 1] = cos, sin
    linear[:, 1, 0], linear[:, 1, 1] = -sin, cos
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    matrices = np.empty((n, 2, 3))
    matrices[:, :, :2] = linear
    matrices[:, :, 2] = centre - (linear @ (centre + shift)[..., None])[..., 0]  # c - A (c + t)
    return matrices


def affine_transform(x: np.ndarray, matrices, fill: float = 0.0) -> np.ndarray:
    """Resample each image through its own inverse affine map, with bilinear interpolation.

    ``out[n, i, j] = x[n]`` read at ``matrices[n] @ (i, j, 1)`` (see the module's conventions). An integer shift
    with identity rotation and scale, ``[[1, 0, -dy], [0, 1, -dx]]``, reproduces the shifted image exactly, with
    ``fill`` in the uncovered band.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`, float32 or float64
    matrices : array_like of shape `(N, 2, 3)`, `(1, 2, 3)` or `(2, 3)`
        Inverse maps from output ``(row, col, 1)`` to input ``(row, col)``; a single map applies to all images.
    fill : float
        Value outside the input (cast to ``x.dtype``).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``
        Values stay within ``[min(x.min(), fill), max(x.max(), fill)]``: bilinear weights are convex.
    """
    owner = "affine_transform"
    x = _check_images(x, owner)
    N, H, W, C = x.shape
    fill = _fill_value(fill, x.dtype, owner)
    matrices = _validated_matrices(matrices, N, owner)
    return _bilinear_sample(x, _source_coords(matrices, H, W, x.dtype), fill)


def _draw_affine(n: int, height: int, width: int, rng, max_shift, max_rotation, scale_range) -> np.ndarray:
    """Draw ``n`` inverse maps: shift per axis, rotation and scale each uniform in their range."""
    shift = rng.uniform(-max_shift, max_shift, size=(n, 2))  # (N, 2)
    rotation = rng.uniform(-max_rotation, max_rotation, size=n)  # (N,)
    scale = rng.uniform(scale_range[0], scale_range[1], size=n)  # (N,)
    return affine_matrices(height, width, shift, rotation, scale)


def _draw_displacements(
    n: int, height: int, width: int, rng, alpha: float, sigma: float, dtype: np.dtype
) -> np.ndarray:
    """Simard's elastic field: uniform in [-1, 1] per pixel and axis, Gaussian-smoothed, times alpha.

    Returns ``(N, 2, H, W)`` displacements ``(d_row, d_col)`` in pixels, of ``dtype``.
    """
    field = rng.random((n, 2, height, width), dtype=dtype)  # (N, 2, H, W) in [0, 1)
    field *= 2
    field -= 1
    # Separable smoothing: along H (left product), then along W (right product), batched by matmul.
    field = _gaussian_matrix(height, sigma, dtype) @ field @ _gaussian_matrix(width, sigma, dtype).T
    field *= alpha
    return field


def random_affine(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    max_shift: float = 2.0,
    max_rotation: float = 10.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    fill: float = 0.0,
) -> np.ndarray:
    """Shift, rotate and scale each image by its own random amounts, about the image centre.

    Per sample: shift ``(rows, cols)`` each uniform in ``[-max_shift, max_shift]`` pixels, rotation uniform in
    ``[-max_rotation, max_rotation]`` degrees (positive is counter-clockwise as displayed), scale uniform in
    ``scale_range``. The ``N`` matrices come from :func:`affine_matrices`; one bilinear gather applies them all.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`, float32 or float64
    rng : np.random.Generator
        The only source of randomness.
    max_shift : float, >= 0
    max_rotation : float, >= 0, degrees
    scale_range : (float, float), 0 < low <= high
    fill : float
        Value of the uncovered area (cast to ``x.dtype``).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``
    """
    owner = "random_affine"
    x = _check_images(x, owner)
    rng = _check_rng(rng, owner)
    max_shift, max_rotation, scale_range = _affine_args(max_shift, max_rotation, scale_range, owner)
    N, H, W, C = x.shape
    fill = _fill_value(fill, x.dtype, owner)
    matrices = _draw_affine(N, H, W, rng, max_shift, max_rotation, scale_range)
    return _bilinear_sample(x, _source_coords(matrices, H, W, x.dtype), fill)


def elastic_distortion(
    x: np.ndarray, rng: np.random.Generator, *, alpha: float = 34.0, sigma: float = 4.0, fill: float = 0.0
) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003): each pixel is read from a smoothly displaced position.

    Per sample and axis a field of independent uniform values in ``[-1, 1]`` is smoothed by a Gaussian of standard
    deviation ``sigma`` (separably along H then W, reflecting at the borders) and scaled by ``alpha``; output
    pixel ``p`` is the input at ``p + d(p)``, bilinearly interpolated. Small ``sigma`` gives near-random jitter,
    large ``sigma`` near-translation; the defaults are the usual ones for 28 x 28 digits.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`, float32 or float64
    rng : np.random.Generator
        The only source of randomness.
    alpha : float, >= 0
        Displacement scale in pixels; 0 is the identity.
    sigma : float, > 0
        Smoothing width in pixels.
    fill : float
        Value read outside the image (cast to ``x.dtype``).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``

    Notes
    -----
    Away from the borders each displacement component has standard deviation about
    ``alpha / (2 sigma sqrt(3 pi))`` (uniform noise has variance 1/3; a 2-D Gaussian of std ``sigma`` keeps
    ``1 / (4 pi sigma²)`` of it): ``0.041 * alpha`` pixels for ``sigma = 4``, 1.4 pixels at the defaults.
    """
    owner = "elastic_distortion"
    x = _check_images(x, owner)
    rng = _check_rng(rng, owner)
    alpha, sigma = _elastic_args(alpha, sigma, owner)
    N, H, W, C = x.shape
    fill = _fill_value(fill, x.dtype, owner)
    coords = _draw_displacements(N, H, W, rng, alpha, sigma, x.dtype)  # (N, 2, H, W)
    coords += _base_grid(H, W, x.dtype)[:2].reshape(2, H, W)  # p + d(p)
    return _bilinear_sample(x, coords, fill)


# ---------------------------------------------------------------------------------------------------------------
# The composable callable a training run holds
# ---------------------------------------------------------------------------------------------------------------


class Augment:
    """Random affine (and optionally elastic) augmentation of a batch, recorded as a JSON-able config.

    Each sample is transformed with probability ``p`` (the rest come back unchanged). A transformed sample is
    elastically distorted, then shifted, rotated and scaled, in a single resampling: output pixel ``p`` reads the
    input at ``M (p + d(p))``, so the image is interpolated, and blurred, once.

    Parameters
    ----------
    max_shift : float, >= 0
        Pixels, per axis.
    max_rotation : float, >= 0
        Degrees.
    scale_range : (float, float), 0 < low <= high
    elastic : None or (alpha, sigma)
        Add Simard's elastic distortion (see :func:`elastic_distortion`); ``None`` leaves it out.
    fill : float
        Value of the area uncovered by the transform.
    p : float in [0, 1]
        Probability that a sample is transformed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> augment = Augment(max_shift=2, elastic=(34.0, 4.0))
    >>> augment(np.zeros((8, 28, 28, 1), np.float32), rng).shape
    (8, 28, 28, 1)
    >>> Augment.from_config(augment.get_config()).get_config() == augment.get_config()  # what a run records
    True
    """

    def __init__(
        self,
        max_shift: float = 2.0,
        max_rotation: float = 10.0,
        scale_range: tuple[float, float] = (0.9, 1.1),
        elastic: tuple[float, float] | None = None,
        fill: float = 0.0,
        p: float = 1.0,
    ):
        owner = "Augment"
        self.max_shift, self.max_rotation, self.scale_range = _affine_args(max_shift, max_rotation, scale_range, owner)
        if elastic is not None:
            if not isinstance(elastic, (tuple, list)) or len(elastic) != 2:
                raise ValueError(f"{owner}: elastic must be None or a pair (alpha, sigma), got {elastic!r}")
            elastic = _elastic_args(elastic[0], elastic[1], owner)
        self.elastic = elastic
        self.fill = _real(fill, "fill", owner)
        self.p = _real(p, "p", owner)
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"{owner}: p must be a probability in [0, 1], got {p!r}")

    def __repr__(self) -> str:
        return (
            f"Augment(max_shift={self.max_shift}, max_rotation={self.max_rotation}, scale_range={self.scale_range}, "
            f"elastic={self.elastic}, fill={self.fill}, p={self.p})"
        )

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch.

        Parameters
        ----------
        x : ndarray of shape `(N, H, W, C)`, float32 or float64
        rng : np.random.Generator
            The only source of randomness: first who is transformed (only when ``p < 1``), then the affine
            parameters, then the elastic fields of those samples.

        Returns
        -------
        ndarray of shape `(N, H, W, C)`, ``x.dtype``; a new array, ``x`` is not modified.
        """
        owner = repr(self)
        x = _check_images(x, owner)
        rng = _check_rng(rng, owner)
        N, H, W, C = x.shape
        fill = _fill_value(self.fill, x.dtype, owner)
        chosen = rng.random(N) < self.p if self.p < 1.0 else None  # (N,) bool
        subset = x if chosen is None else x[chosen]  # (n, H, W, C)
        n = len(subset)
        if n == 0:
            return x.copy()

        matrices = _draw_affine(n, H, W, rng, self.max_shift, self.max_rotation, self.scale_range)  # (n, 2, 3)
        coords = _source_coords(matrices, H, W, x.dtype)  # (n, 2, H, W)
        if self.elastic is not None:
            # M (p + d) = M p + A d, A the linear part: the displacement goes through the same rotation and scale.
            d = _draw_displacements(n, H, W, rng, *self.elastic, x.dtype).reshape(n, 2, H * W)
            linear = matrices[:, :, :2].astype(x.dtype)  # (n, 2, 2)
            coords += (linear @ d).reshape(n, 2, H, W)
        out = _bilinear_sample(subset, coords, fill)
        if chosen is None:
            return out
        result = x.copy()
        result[chosen] = out
        return result

    def get_config(self) -> dict:
        """The constructor's arguments as a JSON-able dict (lists, not tuples, so a JSON round trip is equal)."""
        return {
            "max_shift": self.max_shift,
            "max_rotation": self.max_rotation,
            "scale_range": list(self.scale_range),
            "elastic": None if self.elastic is None else list(self.elastic),
            "fill": self.fill,
            "p": self.p,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Augment":
        """Rebuild from :meth:`get_config`'s dict; missing keys take the defaults, unknown keys are refused."""
        if not isinstance(config, dict):
            raise TypeError(f"Augment.from_config: config must be a dict, got {type(config).__name__}")
        known = {"max_shift", "max_rotation", "scale_range", "elastic", "fill", "p"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Augment.from_config: unknown key(s) {unknown}; expected a subset of {sorted(known)}")
        kwargs = dict(config)
        for key in ("scale_range", "elastic"):
            if isinstance(kwargs.get(key), list):  # JSON has no tuples
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Natural images: random crop with padding, horizontal flip, brightness/contrast jitter
# ---------------------------------------------------------------------------------------------------------------


def _per_channel(value, channels: int, name: str, owner: str, dtype: np.dtype) -> np.ndarray:
    """A scalar or a length-``channels`` sequence of finite numbers as a ``(C,)`` array of ``dtype``."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.ndim != 1 or len(values) not in (1, channels) or not np.isfinite(values).all():
        raise ValueError(f"{owner}: {name} must be a finite number or one per channel ({channels}), got {value!r}")
    return np.broadcast_to(values, (channels,)).astype(dtype)


def random_crop(x: np.ndarray, rng: np.random.Generator, *, padding: int, fill=0.0) -> np.ndarray:
    """Pad each image by ``padding`` pixels of ``fill`` on every side, then cut it back to ``H x W`` at a random offset.

    The offsets ``(row, col)`` are integers drawn uniformly from ``[0, 2 * padding]`` per image, so the content moves
    by ``padding - offset`` pixels (down and right when positive): an exact shifted window, no interpolation, with
    ``fill`` in the uncovered band. ``padding = 0`` returns a copy and draws nothing.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`, float32 or float64
    rng : np.random.Generator
        The only source of randomness: one ``integers(0, 2 * padding + 1, size=(N, 2))`` draw.
    padding : int, >= 0
    fill : float or sequence of C floats
        Value of the padding, one for all channels or one per channel (cast to ``x.dtype``).

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``
    """
    owner = "random_crop"
    x = _check_images(x, owner)
    rng = _check_rng(rng, owner)
    if not isinstance(padding, numbers.Integral) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"{owner}: padding must be an integer >= 0, got {padding!r}")
    N, H, W, C = x.shape
    fill = _per_channel(fill, C, "fill", owner, x.dtype)
    if padding == 0:
        return x.copy()
    P = int(padding)
    padded = np.empty((N, H + 2 * P, W + 2 * P, C), dtype=x.dtype)  # (N, H+2P, W+2P, C)
    padded[...] = fill
    padded[:, P:P + H, P:P + W] = x
    offsets = rng.integers(0, 2 * P + 1, size=(N, 2))  # (N, 2) top-left corner of the window
    rows = offsets[:, :1] + np.arange(H)  # (N, H)
    cols = offsets[:, 1:] + np.arange(W)  # (N, W)
    return padded[np.arange(N)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)


def random_hflip(x: np.ndarray, rng: np.random.Generator, *, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p`` (``x[n, :, ::-1]``, exactly).

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    rng : np.random.Generator
        The only source of randomness: one ``random(N)`` draw (none when ``p`` is 0).
    p : float in [0, 1]

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``; a new array.
    """
    owner = "random_hflip"
    x = _check_images(x, owner)
    rng = _check_rng(rng, owner)
    p = _real(p, "p", owner)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{owner}: p must be a probability in [0, 1], got {p!r}")
    if p == 0.0:
        return x.copy()
    flip = rng.random(len(x)) < p  # (N,)
    return np.where(flip[:, None, None, None], x[:, :, ::-1], x)


def color_jitter(
    x: np.ndarray, rng: np.random.Generator, *, brightness: float = 0.0, contrast: float = 0.0, unit=1.0
) -> np.ndarray:
    """Random contrast and brightness per image: ``out = c (x - m) + m + b u``, per channel.

    ``m`` is each image's mean of each channel (over H and W), ``c`` a contrast factor uniform in
    ``[1 - contrast, 1 + contrast]`` and ``b`` a brightness offset uniform in ``[-brightness, brightness]``, both one
    per image and shared by its channels; ``u`` (``unit``) is the size, in ``x``'s space, of one unit of brightness,
    per channel. Values are not clipped.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`, float32 or float64
    rng : np.random.Generator
        The only source of randomness: ``uniform(size=N)`` for the contrast (when ``contrast > 0``), then for the
        brightness (when ``brightness > 0``).
    brightness : float in [0, 1]
    contrast : float in [0, 1]
    unit : float or sequence of C floats
        For standardised images ``(r - mean_c) / std_c`` of raw images ``r`` in ``[0, 1]``, ``1 / std_c``: then
        ``b`` is a fraction of the raw range, the same raw shift in every channel.

    Returns
    -------
    ndarray of shape `(N, H, W, C)`, ``x.dtype``

    Notes
    -----
    Standardisation is a per-channel affine map ``s = (r - mean) / std``, so the contrast step, taken around the
    image's own per-channel mean, is the same map in raw and standardised space: ``c (s - m_s) + m_s`` is the
    standardisation of ``c (r - m_r) + m_r``. An offset is not: ``b`` in raw units is ``b / std_c`` standardised,
    hence ``unit``.
    """
    owner = "color_jitter"
    x = _check_images(x, owner)
    rng = _check_rng(rng, owner)
    brightness, contrast = _jitter_args(brightness, contrast, owner)
    N, H, W, C = x.shape
    unit = _per_channel(unit, C, "unit", owner, x.dtype)
    out = x.copy()
    if contrast > 0:
        c = rng.uniform(1.0 - contrast, 1.0 + contrast, size=N).astype(x.dtype)[:, None, None, None]  # (N, 1, 1, 1)
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=x.dtype)  # (N, 1, 1, C)
        out -= mean
        out *= c
        out += mean
    if brightness > 0:
        b = rng.uniform(-brightness, brightness, size=N).astype(x.dtype)  # (N,)
        out += (b[:, None] * unit)[:, None, None, :]  # (N, 1, 1, C)
    return out


def _jitter_args(brightness, contrast, owner: str) -> tuple[float, float]:
    values = (_real(brightness, "brightness", owner), _real(contrast, "contrast", owner))
    for name, value in zip(("brightness", "contrast"), values):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{owner}: {name} must be in [0, 1], got {value!r}")
    return values


def _channel_list(value, name: str, owner: str) -> list[float]:
    """A number, or a sequence of them (one per channel), as a list of floats."""
    count = 1 if np.ndim(value) == 0 else len(value)
    return [float(v) for v in _per_channel(value, count, name, owner, np.dtype(np.float64))]


class NaturalAugment:
    """Augmentation for photos: random crop with padding, horizontal flip, brightness/contrast jitter, in that order.

    Each part is off at its default, and a part that is off draws nothing from the Generator. Nothing here
    resamples, so pixels move by whole steps and keep their values (see :func:`random_crop`,
    :func:`random_hflip`, :func:`color_jitter`).

    Parameters
    ----------
    crop_padding : int, >= 0
        Pad by this many pixels of ``fill`` and crop back at a random offset; 0: off.
    hflip : bool
        Mirror left-right with probability 0.5.
    brightness, contrast : float in [0, 1]
        Jitter ranges (0: off), ``brightness`` in units of ``brightness_unit``.
    fill : float or sequence of C floats
        The padding's value, per channel or for all.
    brightness_unit : float or sequence of C floats
        The size of one unit of brightness in the images' space, per channel or for all.

    Examples
    --------
    >>> augment = NaturalAugment(crop_padding=4, hflip=True, brightness=0.2, contrast=0.2)
    >>> augment(np.zeros((8, 32, 32, 3), np.float32), np.random.default_rng(0)).shape
    (8, 32, 32, 3)
    """

    def __init__(self, crop_padding: int = 0, hflip: bool = False, brightness: float = 0.0, contrast: float = 0.0,
                 fill=0.0, brightness_unit=1.0):
        owner = "NaturalAugment"
        if not isinstance(crop_padding, numbers.Integral) or isinstance(crop_padding, bool) or crop_padding < 0:
            raise ValueError(f"{owner}: crop_padding must be an integer >= 0, got {crop_padding!r}")
        if not isinstance(hflip, bool):
            raise ValueError(f"{owner}: hflip must be True or False, got {hflip!r}")
        self.crop_padding, self.hflip = int(crop_padding), hflip
        self.brightness, self.contrast = _jitter_args(brightness, contrast, owner)
        self.fill = _channel_list(fill, "fill", owner)
        self.brightness_unit = _channel_list(brightness_unit, "brightness_unit", owner)

    def __repr__(self) -> str:
        return (f"NaturalAugment(crop_padding={self.crop_padding}, hflip={self.hflip}, brightness={self.brightness}, "
                f"contrast={self.contrast})")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch ``(N, H, W, C)``; returns a new array of its shape and dtype, ``x`` unchanged."""
        out = random_crop(x, rng, padding=self.crop_padding, fill=self.fill)
        if self.hflip:
            out = random_hflip(out, rng, p=0.5)
        if self.brightness > 0 or self.contrast > 0:
            out = color_jitter(out, rng, brightness=self.brightness, contrast=self.contrast, unit=self.brightness_unit)
        return out

    def get_config(self) -> dict:
        """The constructor's arguments as a JSON-able dict."""
        return {"crop_padding": self.crop_padding, "hflip": self.hflip, "brightness": self.brightness,
                "contrast": self.contrast, "fill": list(self.fill), "brightness_unit": list(self.brightness_unit)}

    @classmethod
    def from_config(cls, config: dict) -> "NaturalAugment":
        """Rebuild from :meth:`get_config`'s dict; unknown keys are refused."""
        known = {"crop_padding", "hflip", "brightness", "contrast", "fill", "brightness_unit"}
        if not isinstance(config, dict) or set(config) - known:
            raise ValueError(f"NaturalAugment.from_config: expected a dict with keys among {sorted(known)}, got {config!r}")
        return cls(**config)


class Chain:
    """Apply augmentations one after the other, each drawing from the same Generator in turn.

    Parameters
    ----------
    *transforms : callables ``(x, rng) -> x`` with ``get_config()``, such as :class:`Augment` and
        :class:`NaturalAugment`.
    """

    def __init__(self, *transforms):
        self.transforms = transforms

    def __repr__(self) -> str:
        return " then ".join(repr(t) for t in self.transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch ``(N, H, W, C)`` with each transform in turn."""
        for transform in self.transforms:
            x = transform(x, rng)
        return x

    def get_config(self) -> dict:
        """``{"chain": [{"type": class name, **its config}, ...]}``, JSON-able."""
        return {"chain": [{"type": type(t).__name__, **t.get_config()} for t in self.transforms]}
