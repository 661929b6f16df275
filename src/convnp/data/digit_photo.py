"""Finding the ink in a photo of a digit, in NumPy: the paper's brightness estimated locally and divided out (and
the printed lines of ruled or squared paper with it), ink told from paper by Otsu's threshold, and the ink split into
connected components, of which those forming the digit are kept.

Each step is a small function of arrays, used by :func:`convnp.data.images.preprocess_digit` (one digit) and by
:mod:`convnp.data.digit_row` (a row of digits). Images here are grey, ``(H, W)`` float64, dark ink on light paper
(the caller inverts light-on-dark pictures first).

References
----------
1) N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 1979.
2) M. van Herk, "A fast algorithm for local minimum and maximum filters on rectangular and octagonal kernels",
   Pattern Recognition Letters 13(7), 1992; J. Gil, M. Werman, IEEE Trans. PAMI 15(5), 1993: a sliding maximum
   in three comparisons per pixel whatever the window's size.
3) Y. Shiloach, U. Vishkin, "An O(log n) parallel connectivity algorithm", J. Algorithms 3(1), 1982: connected
   components by hooking roots and halving paths, here vectorised over every pair of neighbouring ink pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Components", "block_mean", "box_blur", "choose_digit", "closing", "dilate", "ink_strength", "label_components",
    "measure_components", "otsu_threshold", "paper_brightness", "remove_ruling", "sliding_max", "straight_lines",
]


# ---- local filters ---------------------------------------------------------------------------------------------------
def box_blur(x: np.ndarray, radius: int) -> np.ndarray:
    """The mean of each pixel's ``(2r+1) x (2r+1)`` neighbourhood, over the part of it inside the image.

    Parameters
    ----------
    x : ndarray of shape `(H, W)`, float
    radius : int, >= 0

    Returns
    -------
    ndarray of shape `(H, W)`, float64. Sums of cumulative sums, so whole-number images sum exactly: a flat region
    keeps its value to the last bit.
    """
    if radius <= 0:
        return np.asarray(x, dtype=np.float64).copy()
    out = np.asarray(x, dtype=np.float64)
    counts = np.ones_like(out)
    for axis in (0, 1):
        out, counts = _window_sum(out, radius, axis), _window_sum(counts, radius, axis)
    return out / counts


def _window_sum(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Sum over ``[i - radius, i + radius]`` along ``axis``, the window clipped to the array."""
    n = x.shape[axis]
    c = np.cumsum(x, axis=axis)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)  # c[k] = sum of x[:k]
    hi = np.minimum(np.arange(n) + radius + 1, n)
    lo = np.maximum(np.arange(n) - radius, 0)
    return np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)


def sliding_max(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The maximum over a centred window of ``size`` (odd) pixels along ``axis``, the window clipped to the array.

    Van Herk / Gil-Werman (see the module's references): the axis is cut into blocks of ``size``; a window always
    spans the end of one block and the start of the next, so its maximum is the larger of a suffix maximum and a
    prefix maximum, each one cumulative pass. Cost per pixel does not grow with ``size``.

    Parameters
    ----------
    x : ndarray of shape `(H, W)`
    size : int, odd, >= 1
    axis : 0 or 1

    Returns
    -------
    ndarray of shape `(H, W)`, float64
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n, half = x.shape[-1], size // 2
    if size <= 7:  # a few shifted maxima cost less than the blocks' bookkeeping
        out = x.copy()
        for shift in range(1, min(half, n - 1) + 1):
            np.maximum(out[..., shift:], x[..., :-shift], out=out[..., shift:])
            np.maximum(out[..., :-shift], x[..., shift:], out=out[..., :-shift])
        return np.moveaxis(out, -1, axis)
    m = -(-(n + 2 * half) // size) * size  # padded length: a whole number of blocks, room for every window
    padded = np.full(x.shape[:-1] + (m,), -np.inf)
    padded[..., half : half + n] = x
    blocks = padded.reshape(x.shape[:-1] + (m // size, size))  # (rows, blocks, size)
    prefix = np.maximum.accumulate(blocks, axis=-1).reshape(padded.shape)
    suffix = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(padded.shape)
    out = np.maximum(suffix[..., :n], prefix[..., size - 1 : size - 1 + n])  # window [i, i + size - 1] padded
    return np.moveaxis(out, -1, axis)


def dilate(x: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation: the maximum over each pixel's ``(2r+1) x (2r+1)`` square; ``(H, W)`` -> `(H, W)` float64."""
    size = 2 * max(int(radius), 0) + 1
    return sliding_max(sliding_max(x, size, 0), size, 1)


def closing(x: np.ndarray, radius: int) -> np.ndarray:
    """Grey closing (a dilation, then an erosion, over a ``(2r+1)`` square): dark details narrower than the square
    (pen strokes) are filled with the brightness around them, while slow changes (light falling off, the edge of a
    wide shadow) are kept: a closing returns any linear ramp, and any dark region wider than the square, unchanged.

    Parameters
    ----------
    x : ndarray of shape `(H, W)`
    radius : int, >= 0

    Returns
    -------
    ndarray of shape `(H, W)`, float64, ``>= x`` everywhere
    """
    return -dilate(-dilate(x, radius), radius)


# ---- paper and ink ---------------------------------------------------------------------------------------------------
def paper_brightness(grey: np.ndarray, *, stroke_radius: int, block: int = 1, smooth_radius: int = 0) -> np.ndarray:
    """How bright the paper would be at each pixel without the ink: the closing of the (lightly smoothed) picture
    by a square wider than any pen stroke.

    Parameters
    ----------
    grey : ndarray of shape `(H, W)`, dark ink on light paper
    stroke_radius : int
        Half the side of the closing's square, in pixels; strokes up to ``2 * stroke_radius`` wide vanish.
    block : int
        Work on the means of ``block x block`` tiles (:func:`block_mean`), each tile's answer then given to its
        pixels: the paper's light changes slowly, and a large picture costs ``block**2`` times less.
    smooth_radius : int
        Box blur of the tiles first, so sensor noise does not lift the estimate by its brightest grains.

    Returns
    -------
    ndarray of shape `(H, W)`, float64
    """
    H, W = grey.shape
    tiles = box_blur(block_mean(grey, block), smooth_radius)  # (ceil(H / block), ceil(W / block))
    radius = -(-stroke_radius // block) + smooth_radius
    # Continued past the edges as straight lines (odd reflection), so the square, whole at the edge too, sees the
    # light go on as it went: cut short there, a closing lifts a slope meeting the edge (a shadow's rim) by
    # slope x radius. Clipped to the picture's own range, so a dark mark on the edge mirrors to no bright spike.
    pads = [radius if n > 1 else 0 for n in tiles.shape]  # a single row or column has no slope to continue
    padded = np.clip(np.pad(tiles, [(p, p) for p in pads], mode="reflect", reflect_type="odd"),
                     tiles.min(), tiles.max())
    paper = closing(padded, radius)[pads[0] : pads[0] + tiles.shape[0], pads[1] : pads[1] + tiles.shape[1]]
    return np.repeat(np.repeat(paper, block, axis=0), block, axis=1)[:H, :W]


def block_mean(x: np.ndarray, block: int) -> np.ndarray:
    """Means of ``block x block`` tiles: ``(H, W)`` -> `(ceil(H / block), ceil(W / block))`, float64; the last
    row and column of tiles are filled out by repeating the picture's edge."""
    x = np.asarray(x, dtype=np.float64)
    if block <= 1:
        return x
    H, W = x.shape
    padded = np.pad(x, ((0, -H % block), (0, -W % block)), mode="edge")
    n_rows, n_cols = padded.shape[0] // block, padded.shape[1] // block
    return padded.reshape(n_rows, block, n_cols, block).mean(axis=(1, 3))  # (n_rows, n_cols)


def ink_strength(grey: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """How much of the light the ink takes away: ``1 - grey / paper``, in [0, 1], ``(H, W)`` -> `(H, W)`.

    Light falls on paper and ink alike, so the ratio is the same in a shadow as in full light, where a difference
    would not be.
    """
    ratio = np.divide(grey, paper, out=np.ones_like(paper), where=paper > 0)
    return np.clip(1.0 - ratio, 0.0, 1.0)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the level that splits ``values`` into two classes of greatest between-class variance
    (see the module's references).

    Parameters
    ----------
    values : ndarray, any shape, finite
    bins : int
        Histogram bins between the smallest and largest value.

    Returns
    -------
    float
        A value ``t`` with ``min <= t < max``: the upper edge of the dark class's last bin (``values > t`` is the
        bright class); the smallest value when all are equal.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(v.min()), float(v.max())
    if high <= low:
        return low
    counts, edges = np.histogram(v, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)[:-1].astype(np.float64)  # pixels at or below each split, (bins - 1,)
    w1 = v.size - w0
    s0 = np.cumsum(counts * centres)[:-1]
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (float((counts * centres).sum()) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1 + int(np.argmax(between))])


# ---- ruled and squared paper ----------------------------------------------------------------------------------------
def straight_lines(strength: np.ndarray, axis: int, *, length: int, level: float = 0.04,
                   cover: float = 0.8) -> np.ndarray:
    """The printed lines of ruled or squared paper running along ``axis`` in an ink ``strength`` picture: straight
    pieces at least ``length`` pixels long that together cross most of the picture.

    A grey opening by a segment of ``length`` pixels along ``axis`` (a sliding minimum, then a sliding maximum)
    keeps only what is that long and straight. Before it the strength is averaged over 5 pixels along the lines,
    so sensor noise does not break them, and its maximum taken over 3 across them, so a line turned by a degree or
    two stays inside the segment. A line is each row (``axis=1``; column for ``axis=0``) whose opening exceeds
    ``level`` over at least ``cover`` of its length (a pen stroke is rarely that long), and its strength is at
    most what it is alone on that row, so a stroke lying on a line is not taken for more line.

    Parameters
    ----------
    strength : ndarray of shape `(H, W)`, in [0, 1]
        :func:`ink_strength`.
    axis : 0 or 1
        1: horizontal lines (along each row), 0: vertical ones (along each column).
    length : int
        The shortest straight piece counted, in pixels.
    level, cover : float

    Returns
    -------
    ndarray of shape `(H, W)`, float64: on the lines' rows (or columns) the lines' strength, at most
    ``strength``'s; 0 elsewhere
    """
    x = np.asarray(strength, dtype=np.float64)
    smooth = _window_sum(x, 2, axis) / _window_sum(np.ones_like(x), 2, axis)  # 5 pixels along the lines
    widened = sliding_max(smooth, 3, 1 - axis)
    size = max(1, int(length)) | 1  # sliding_max takes odd windows
    opened = sliding_max(-sliding_max(-widened, size, axis), size, axis)
    on_line = np.expand_dims((opened > level).mean(axis=axis) >= cover, axis)  # (H, 1) or (1, W)
    # A line is as strong all along as where it is alone: a stroke lying on it for a while (even most of the
    # way: a 1 on a vertical line) is not more line. With the line over at least 80% of its row, the 30th
    # percentile of the row lies on the line, below any stroke on it, unless strokes cover 70% of it.
    typical = np.percentile(opened, 30, axis=axis, keepdims=True)  # (H, 1) or (1, W)
    return np.minimum(np.minimum(opened, typical), x) * on_line


def remove_ruling(strength: np.ndarray, *, min_lines: int = 3, share: float = 0.25,
                  level: float = 0.04) -> np.ndarray:
    """``strength`` `(H, W)` without the lines of ruled or squared paper, so they neither join the digit's
    regions nor lift its box.

    Along each axis the lines are found by :func:`straight_lines` (pieces at least ``share`` of the picture's side
    long, crossing most of it) and divided out, as the paper's brightness is, only when there are ``min_lines`` or
    more of them apart: printed ruling repeats, while one long stroke (a tall 1) or the page's edge is alone.
    Lines turned by more than a degree or two are left.

    Returns
    -------
    ndarray of shape `(H, W)`, float64 in [0, 1]
    """
    x = np.asarray(strength, dtype=np.float64)
    ruling = np.zeros_like(x)
    for axis in (1, 0):
        # First the cheap test most pictures fail: a line crossing most of its row is that row's median (every
        # 4th pixel of it tells), where plain paper's rows, and those through a digit, have paper's 0.
        sample = x[:, ::4] if axis == 1 else x[::4, :]
        if _runs(np.median(sample, axis=axis) > level / 2) < min_lines:
            continue
        lines = straight_lines(x, axis, length=max(3, int(share * x.shape[axis])), level=level)
        if _runs(lines.any(axis=axis)) >= min_lines:
            ruling = np.maximum(ruling, lines)
    # A line is a darker stripe of paper: divided out as the paper is (ink_strength), so ink crossing it keeps
    # nearly its full strength, where taking the line's strength away would notch every stroke it crosses.
    kept = np.divide(x - ruling, 1.0 - ruling, out=np.zeros_like(x), where=ruling < 1.0)
    return np.clip(kept, 0.0, 1.0)


def _runs(flags: np.ndarray) -> int:
    """How many runs of consecutive True ``flags`` `(n,)` holds (neighbouring rows of one line are one run)."""
    return int(np.count_nonzero(np.diff(flags.astype(np.int8), prepend=0) == 1))


# ---- connected components --------------------------------------------------------------------------------------------
def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 8-connected regions of ``mask``.

    Every pixel starts as its own root; each round, for every pair of neighbouring mask pixels whose roots differ,
    the larger root is hooked under the smaller, then each pixel's pointer jumps to its root (see the module's
    references). Rounds repeat until no pair disagrees.

    Parameters
    ----------
    mask : ndarray of shape `(H, W)`, bool

    Returns
    -------
    labels : ndarray of shape `(H, W)`, int64
        0 off the mask; 1 .. n on it, numbered in raster order of each region's first pixel.
    n : int
    """
    mask = np.asarray(mask, dtype=bool)
    H, W = mask.shape
    idx = np.flatnonzero(mask)
    labels = np.zeros(H * W, dtype=np.int64)
    if idx.size == 0:
        return labels.reshape(H, W), 0
    a, b = _neighbour_pairs(mask)
    parent = np.arange(H * W)
    while a.size:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(ra[differ], rb[differ]), np.minimum(ra[differ], rb[differ]))
        while True:  # pointer jumping until every mask pixel points at its root
            nxt = parent[parent[idx]]
            if np.array_equal(nxt, parent[idx]):
                break
            parent[idx] = nxt
    roots, first = np.unique(parent[idx], return_inverse=True)  # roots are each region's smallest index
    labels[idx] = first + 1
    return labels.reshape(H, W), len(roots)


def _neighbour_pairs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices ``(a, b)`` of every pair of 8-neighbouring mask pixels, each pair once."""
    H, W = mask.shape
    firsts, seconds = [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        x0, x1 = max(0, -dx), W - max(0, dx)  # columns whose neighbour (y + dy, x + dx) is inside
        both = mask[: H - dy, x0:x1] & mask[dy:, x0 + dx : x1 + dx]
        ys, xs = np.nonzero(both)
        a = ys * W + xs + x0
        firsts.append(a)
        seconds.append(a + dy * W + dx)
    return np.concatenate(firsts), np.concatenate(seconds)


@dataclass(frozen=True)
class Components:
    """Measurements of labelled regions, one entry per label 1 .. n (index ``label - 1``); each an `(n,)` array.

    ``area`` (pixels), ``mass`` (summed ink), ``top``/``bottom``/``left``/``right`` (inclusive bounding box),
    ``cy``/``cx`` (centre of mass of the ink), ``border`` (touches the picture's edge).
    """

    area: np.ndarray
    mass: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    border: np.ndarray

    def __len__(self) -> int:
        return len(self.area)


def measure_components(labels: np.ndarray, n: int, ink: np.ndarray) -> Components:
    """Area, ink mass, bounding box, centre of mass and border contact of each of the ``n`` regions of ``labels``
    `(H, W)`, weighting by ``ink`` `(H, W)` (>= 0)."""
    H, W = labels.shape
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Components(empty, empty.astype(float), empty, empty, empty, empty, empty.astype(float),
                          empty.astype(float), empty.astype(bool))
    lab = flat[idx] - 1
    ys, xs = idx // W, idx % W
    weight = ink.ravel()[idx] + 1e-12  # a region of zero ink still has a centre
    area = np.bincount(lab, minlength=n)
    mass = np.bincount(lab, weights=weight, minlength=n)
    order = np.argsort(lab, kind="stable")  # grouped by label, raster order within each
    ys_sorted, xs_sorted = ys[order], xs[order]
    starts = np.searchsorted(lab[order], np.arange(n))
    top, bottom = ys_sorted[starts], np.maximum.reduceat(ys_sorted, starts)
    left, right = np.minimum.reduceat(xs_sorted, starts), np.maximum.reduceat(xs_sorted, starts)
    cy = np.bincount(lab, weights=weight * ys, minlength=n) / mass
    cx = np.bincount(lab, weights=weight * xs, minlength=n) / mass
    border = (top == 0) | (left == 0) | (bottom == H - 1) | (right == W - 1)
    return Components(area, mass, top, bottom, left, right, cy, cx, border)


def choose_digit(parts: Components, shape: tuple[int, int], *, reach: float = 0.3,
                 min_share: float = 0.05) -> np.ndarray:
    """Which regions form the digit: the one with the most ink, weighed by how central it is (and discounted if it
    runs off the picture's edge, as a page edge or a shadow's rim does), then every region near enough to it to be
    part of the same digit and not a speck.

    Parameters
    ----------
    parts : Components
    shape : (H, W) of the picture
    reach : float
        A region joins when its box comes within ``reach`` times the digit's longer side of the digit's box.
    min_share : float
        ... and its area is at least this share of the main region's (JPEG specks, dust stay out).

    Returns
    -------
    ndarray of shape `(n,)`, bool: the regions kept (at least one when there is any)
    """
    n = len(parts)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    H, W = shape
    off = ((parts.cy - (H - 1) / 2) / H) ** 2 + ((parts.cx - (W - 1) / 2) / W) ** 2  # 0 centre .. 0.5 corner
    score = parts.mass * np.exp(-4.0 * off) * np.where(parts.border, 0.25, 1.0)
    main = int(np.argmax(score))
    keep[main] = True
    allowed = (parts.area >= min_share * parts.area[main]) & (~parts.border | parts.border[main])
    while True:
        top, bottom = parts.top[keep].min(), parts.bottom[keep].max()
        left, right = parts.left[keep].min(), parts.right[keep].max()
        gap = reach * max(bottom - top + 1, right - left + 1)
        near = ((parts.bottom >= top - gap) & (parts.top <= bottom + gap)
                & (parts.right >= left - gap) & (parts.left <= right + gap))
        grow = near & allowed & ~keep
        if not grow.any():
            return keep
        keep |= grow
