"""A picture of several digits written in a row (a house number, a year, a postcode) -> one MNIST-like image per
digit, left to right, with its box.

The picture is prepared as one digit's is (:func:`convnp.data.images.preprocess_digit`: the paper divided out, ink
told from paper, regions labelled); then the regions that form the row are kept (:func:`row_parts`), grouped into
digits by the columns they share (:func:`group_columns`), and a group too wide for one digit (digits that touch)
is cut into as many as its width suggests, one fewer being tried too (:func:`cut_options`), each way
where its cuts together cross the least ink of the group's column sums, the vertical projection
(:func:`cut_columns`); a classifier's confidence, when given, chooses between the ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convnp.data.digit_photo import Components, dilate
from convnp.data.images import (
    check_stands_out, crop_to_ink, dark_on_light, find_ink, mnist_box, working_size,
)
from convnp.errors import DataError

__all__ = ["RowDigit", "cut_options", "cut_columns", "group_columns", "read_row", "row_parts"]

#: What a refusal says was expected.
ROW = "digits written in a row"

# A group wider than this many times its height holds touching digits (a handwritten digit is rarely wider than
# tall; two side by side are about one and a half times their height).
_WIDE = 1.2
# A typical digit's width, as a share of its height, to count the digits in a wide group when no digit of the row
# stands alone to show the typical width (MNIST's digits other than 1: about 0.6 to 0.8).
_DIGIT_WIDTH = 0.7


@dataclass(frozen=True)
class RowDigit:
    """One digit of a row: ``box`` ``(top, left, bottom, right)``, inclusive, in the given picture's pixels, and
    ``image`` `(size, size)`, float64 in [0, 255], prepared as MNIST's digits were."""

    box: tuple[int, int, int, int]
    image: np.ndarray


def read_row(grey: np.ndarray, size: int = 28, box: int = 20, *, confidence=None) -> list[RowDigit]:
    """Find the digits written in a row in ``grey`` and prepare each as MNIST's digits were.

    Parameters
    ----------
    grey : ndarray of shape `(H, W)`, values in [0, 255]
        A picture of one or more digits side by side, as :func:`~convnp.data.image_files.read_image` returns it.
    size, box : int
        Canvas side and digit box, as in :func:`~convnp.data.images.preprocess_digit`.
    confidence : callable, optional
        ``confidence(images)``: images `(m, size, size)` -> `(m,)` how sure a classifier is of each (its top
        probability). Given, a group that may hold a different number of touching digits than its width
        suggests (:func:`cut_options`) is cut the way whose pieces the classifier is surest of (the mean log of
        their confidences); without it, the width decides.

    Returns
    -------
    list of RowDigit, left to right (at least one)

    Raises
    ------
    DataError
        "no ink found", as for one digit.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or 0 in grey.shape or not np.isfinite(grey).all():
        raise ValueError(f"read_row: expected a finite grey image of shape (H, W), got shape {grey.shape}")
    x = dark_on_light(working_size(grey))
    found = find_ink(x, ROW)
    keep = row_parts(found.parts, x.shape)
    on_row = np.concatenate([[False], keep])[found.labels]  # (h, w)
    check_stands_out(on_row, found.depth, ROW)
    soft = found.soft(on_row)  # (h, w) in [0, 1]
    scale = (grey.shape[0] / x.shape[0], grey.shape[1] / x.shape[1])
    digits = []
    for group, options in cut_options(found.parts, group_columns(found.parts, keep), soft, found.labels):
        pieces = [[_piece(found, soft, group, span, scale, size, box) for span in spans] for spans in options]
        pieces = [[d for d in option if d is not None] for option in pieces]
        pieces = [option for option in pieces if option] or [[]]
        if confidence is not None and len(pieces) > 1:
            sure = [float(np.mean(np.log(np.clip(confidence(np.stack([d.image for d in option])), 1e-12, 1))
                              + [_shape(d.box) for d in option])) for option in pieces]
            digits.extend(pieces[int(np.argmax(sure))])
        else:
            digits.extend(pieces[0])
    if not digits:
        raise DataError(f"no ink found: no digit in the picture; expected {ROW}")
    return digits


def _shape(box: tuple[int, int, int, int]) -> float:
    """How unlike one handwritten digit a box's shape is, as a log-probability: 0 up to 1.3 times as wide as tall
    (a wide 2 or 0), falling beyond (two digits side by side are about 1.4 times as wide as tall, or more)."""
    top, left, bottom, right = box
    ratio = (right - left + 1) / (bottom - top + 1)
    return -(max(0.0, ratio - 1.3) / 0.3) ** 2


def _piece(found, soft: np.ndarray, group: list[int], span: tuple[int, int], scale: tuple[float, float],
           size: int, box: int) -> RowDigit | None:
    """The digit made of ``group``'s regions in columns ``span`` (inclusive), or None if no ink is there."""
    c0, c1 = span
    mask = np.isin(found.labels, np.asarray(group) + 1)
    mask[:, :c0] = mask[:, c1 + 1 :] = False
    ink = soft * _reach(mask, found.block, c0, c1)
    if not ink.any():
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    where = (int(rows[0] * scale[0]), int(cols[0] * scale[1]),
             int((rows[-1] + 1) * scale[0]) - 1, int((cols[-1] + 1) * scale[1]) - 1)
    return RowDigit(where, mnist_box(crop_to_ink(ink), size, box))


def _reach(mask: np.ndarray, block: int, c0: int, c1: int) -> np.ndarray:
    """The pixels within ``1 + block`` of ``mask`` `(h, w)` (a digit's soft edges), in its columns ``c0 .. c1``."""
    near = dilate(mask, 1 + block) > 0
    near[:, :c0] = near[:, c1 + 1 :] = False
    return near


def row_parts(parts: Components, shape: tuple[int, int], *, min_share: float = 0.02) -> np.ndarray:
    """Which regions belong to the row of digits: not specks (at least ``min_share`` of the largest region's
    area), not running off the picture's edge (a page edge, a shadow's rim) unless every region does, and
    overlapping the rows of the largest region, give or take a quarter of its height (the line of writing, a
    5's flag just above it).

    Parameters
    ----------
    parts : Components
    shape : (H, W) of the picture

    Returns
    -------
    ndarray of shape `(n,)`, bool
    """
    n = len(parts)
    if n == 0:
        return np.zeros(0, dtype=bool)
    inside = ~parts.border if (~parts.border).any() else np.ones(n, dtype=bool)
    area = np.where(inside, parts.area, 0)
    biggest = int(np.argmax(area))
    keep = inside & (parts.area >= min_share * parts.area[biggest])
    margin = (parts.bottom[biggest] - parts.top[biggest] + 1) / 4
    top, bottom = parts.top[biggest] - margin, parts.bottom[biggest] + margin
    return keep & (parts.bottom >= top) & (parts.top <= bottom)


def group_columns(parts: Components, keep: np.ndarray) -> list[list[int]]:
    """The kept regions grouped into digits, left to right: regions whose column ranges overlap by at least half
    the narrower one's width are one digit (the parts of a broken stroke), and a group less than half as tall as
    the row joins the group beside it (a 5's flag).

    Returns
    -------
    list of lists of region indices (into ``parts``), sorted by their leftmost column
    """
    ids = sorted((int(i) for i in np.flatnonzero(keep)), key=lambda i: int(parts.left[i]))
    groups: list[list[int]] = []
    spans: list[list[int]] = []  # each group's [first column, last column]
    for i in ids:
        left, right = int(parts.left[i]), int(parts.right[i])
        for group, span in zip(groups, spans):
            overlap = min(right, span[1]) - max(left, span[0]) + 1
            if overlap >= 0.5 * min(right - left + 1, span[1] - span[0] + 1):
                group.append(i)
                span[0], span[1] = min(span[0], left), max(span[1], right)
                break
        else:
            groups.append([i])
            spans.append([left, right])
    groups = _merge_fragments(parts, groups)
    return sorted(groups, key=lambda g: int(parts.left[g].min()))


def _merge_fragments(parts: Components, groups: list[list[int]]) -> list[list[int]]:
    """Groups less than half as tall as the row's median group (a 5's flag, a stroke's broken end) joined to the
    group whose columns they overlap most, else to the nearest one within a third of the row's height."""
    heights = np.array([int(parts.bottom[g].max() - parts.top[g].min()) + 1 for g in groups])
    if len(groups) < 2:
        return groups
    row_height = float(np.median(heights))
    spans = [(int(parts.left[g].min()), int(parts.right[g].max())) for g in groups]
    merged = [list(g) for g in groups]
    for i in np.argsort(heights):  # the smallest first
        if heights[i] >= 0.5 * row_height or not merged[i]:
            continue
        others = [j for j in range(len(groups)) if j != i and merged[j] and heights[j] >= 0.5 * row_height]
        if not others:
            continue
        # overlap of columns (positive) or minus the gap between them (negative)
        closeness = [min(spans[i][1], spans[j][1]) - max(spans[i][0], spans[j][0]) for j in others]
        best = int(np.argmax(closeness))
        if closeness[best] >= -row_height / 3:
            merged[others[best]].extend(merged[i])
            merged[i] = []
    return [g for g in merged if g]


def cut_options(parts: Components, groups: list[list[int]], ink: np.ndarray,
                labels: np.ndarray) -> list[tuple[list[int], list[list[tuple[int, int]]]]]:
    """The ways each group may be cut into digits, the likeliest first.

    A group wider than :data:`_WIDE` times its height holds touching digits: as many as its width holds digits
    of the row's typical shape (the median width-to-height ratio of the digits standing alone, 1s left out, kept
    within 0.5-0.9; :data:`_DIGIT_WIDTH` when none stands alone), at least two; one fewer is the other option
    (one more is not tried: a classifier is as sure of a digit's halves as of digits, so cutting too many is the
    likelier mistake). Each way is cut where its pieces together cross the least ink (:func:`cut_columns`).

    Parameters
    ----------
    parts : Components
    groups : list of lists of region indices
    ink : ndarray of shape `(h, w)`, the ink strength
    labels : ndarray of shape `(h, w)`, the regions' labels

    Returns
    -------
    list of ``(region indices, options)``, left to right; each option a list of column spans ``(first, last)``
    """
    spans = [(int(parts.left[g].min()), int(parts.right[g].max()),
              int(parts.bottom[g].max() - parts.top[g].min()) + 1) for g in groups]  # (c0, c1, height)
    # Widths of the digits standing alone, as shares of their heights; 1s (narrower than half their height) left
    # out, as they say nothing of the others' widths.
    single = [(c1 - c0 + 1) / height for c0, c1, height in spans if 0.5 * height <= c1 - c0 + 1 <= _WIDE * height]
    share = float(np.clip(np.median(single), 0.5, 0.9)) if single else _DIGIT_WIDTH
    out = []
    for group, (c0, c1, height) in zip(groups, spans):
        width = c1 - c0 + 1
        if width <= _WIDE * height:
            out.append((group, [[(c0, c1)]]))
            continue
        likely = max(2, round(width / (share * height)))
        counts = [likely, likely - 1]
        mine = np.isin(labels[:, c0 : c1 + 1], np.asarray(group) + 1)
        profile = (ink[:, c0 : c1 + 1] * mine).sum(axis=0)  # (width,): the vertical projection
        options = []
        for k in dict.fromkeys(counts):
            edges = [c0 + e for e in cut_columns(profile, k)] + [c1 + 1]
            options.append([(edges[j], edges[j + 1] - 1) for j in range(k)])
        out.append((group, options))
    return out


def cut_columns(profile: np.ndarray, k: int, *, evenness: float = 0.5) -> list[int]:
    """Where to cut a run of ``k`` touching digits: the ``k - 1`` columns that together cross the least ink,
    with a cost for pieces of unequal width, found exactly by dynamic programming over the columns.

    Parameters
    ----------
    profile : ndarray of shape `(width,)`
        The ink in each column (the vertical projection).
    k : int
        How many pieces.
    evenness : float
        Weight of ``sum(((piece width - width / k) / (width / k)) ** 2)`` against the ink crossed (as a share of
        the fullest column's).

    Returns
    -------
    list of k int: the first column of each piece, starting with 0
    """
    if k <= 1:
        return [0]
    width = len(profile)
    mean = width / k
    crossing = profile / max(float(profile.max()), 1e-12)  # (width,)
    starts = np.arange(width + 1)
    piece = evenness * ((starts[None, :] - starts[:, None] - mean) / mean) ** 2  # (from, to): a piece's cost
    piece[starts[None, :] - starts[:, None] < 1] = np.inf  # pieces at least a column wide, left to right
    cost = piece[0].copy()  # cost[e]: the best first piece(s) ending just before column e
    back = []
    for _ in range(k - 2):
        total = cost[:, None] + np.append(crossing, 0.0)[:, None] + piece  # (prev cut, next cut)
        back.append(np.argmin(total, axis=0))
        cost = total.min(axis=0)
    total = cost + np.append(crossing, 0.0) + piece[:, width]  # the last piece runs to the end
    cuts = [int(np.argmin(total[:width]))]
    for choice in reversed(back):
        cuts.append(int(choice[cuts[-1]]))
    return [0] + cuts[::-1]
