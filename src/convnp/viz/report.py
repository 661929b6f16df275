"""One self-contained ``report.html`` for a run folder: settings, curves, results, filters, feature maps,
confusion matrix and the most confident mistakes, every image embedded as a base64 PNG (no other files).

The model shown is the run's ``best.npz`` (else ``last.npz``), evaluated on the test split of the run's data: the
MNIST test set when the run trained on ``mnist``, the ``x_test``/``y_test`` arrays of its ``.npz`` otherwise (a
data set without a test split gets no confusion matrix or mistakes). Everything is computed once by
:func:`load_run`, drawn by :func:`run_figures`, and laid out by :func:`render_html`; ``convnp plot`` uses the same
three steps to also write each figure as a PNG.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convnp import pretrained
from convnp.checkpoint import Checkpoint, load_checkpoint
from convnp.inference import Classifier
from convnp.train.callbacks import Callback
from convnp.viz._common import figure_png, require_matplotlib
from convnp.viz.confusion import plot_confusion
from convnp.viz.curves import plot_curves, read_metrics
from convnp.viz.feature_maps import plot_feature_maps
from convnp.viz.filters import plot_filters
from convnp.viz.mistakes import plot_mistakes

log = logging.getLogger(__name__)

#: The figures of a report, in the order they appear (also the PNG file names ``convnp plot`` writes).
FIGURES = ("curves", "filters", "feature_maps", "confusion", "mistakes")


@dataclass
class RunView:
    """Everything a report shows, computed once from a run folder."""

    run_dir: Path
    config: dict  # config.json: {"settings", "versions", "written"}
    history: list[dict]  # metrics.csv rows
    results: dict | None  # results.json, None until training has finished
    checkpoint: Checkpoint
    split: str | None = None  # where the evaluation images come from ("test"), None without a test split
    images: np.ndarray | None = None  # (N, H, W, C) as stored
    y_true: np.ndarray | None = None  # (N,)
    probs: np.ndarray | None = None  # (N, K) softmax of the checkpoint's logits
    notes: list[str] = field(default_factory=list)

    @property
    def settings(self) -> dict:
        return self.config.get("settings", {})

    @property
    def y_pred(self) -> np.ndarray | None:
        return None if self.probs is None else self.probs.argmax(axis=1)

    def class_name(self, k: int) -> str:
        """Class ``k``'s name: the checkpoint's ``"classes"`` entry (written by ``convnp train``), else ``str(k)``."""
        names = self.checkpoint.meta.get("classes")
        return str(names[k]) if isinstance(names, list) and 0 <= k < len(names) else str(k)

    @property
    def accuracy(self) -> float | None:
        return None if self.probs is None else float(np.mean(self.y_pred == self.y_true))


def check_run_dir(run_dir) -> Path:
    """``run_dir`` as a Path, or a one-line ValueError saying why it is not a run folder.

    A pretrained model's name (``mnist-best``) stands for its bundled run folder (:func:`convnp.pretrained.resolve`).
    """
    run_dir = pretrained.resolve(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir}: is not a run folder (no config.json); pass a folder written by convnp train")
    if not (run_dir / "metrics.csv").is_file():
        raise ValueError(f"{run_dir}: holds no metrics.csv yet; train at least one epoch first")
    if not any((run_dir / name).is_file() for name in ("best.npz", "last.npz")):
        raise ValueError(f"{run_dir}: holds no checkpoint (best.npz or last.npz); train at least one epoch first")
    return run_dir


def load_checkpoint_view(path, data: str | None = None, *, test_split: float | None = None) -> RunView:
    """A report's view of a checkpoint file outside a run folder (``convnp import``'s, a copied ``best.npz``):
    no curves or settings; with ``data``, evaluated on its test split (else its training images), a folder's
    images brought to the network's input.

    Parameters
    ----------
    path : a checkpoint file (``.npz``)
    data : ``"mnist"``, an ``.npz`` or a folder, optional; without it, only the filters are drawn
    test_split : for a folder without ``test/``, the fraction held out as the test split (default: the
        checkpoint's run's, when it trained on that folder)
    """
    from convnp.data.datasets import load_dataset

    checkpoint = load_checkpoint(path)
    trained = checkpoint.meta.get("train_config") or {}
    settings = {"model": checkpoint.meta.get("model_name", Path(str(path)).stem), "data": data}
    view = RunView(checkpoint.path.parent, {"settings": settings}, list(checkpoint.meta.get("history") or []), None,
                   checkpoint)
    if data is None:
        view.notes.append("no --data given: no feature maps, confusion matrix or mistakes")
        return view
    same = Path(str(trained.get("data", ""))).resolve() == Path(data).resolve()
    split = test_split if test_split is not None else (trained.get("test_split") or 0.0) if same else 0.0
    options = _folder_options({"data": data, "test_split": split}, checkpoint)
    _evaluate_into(view, load_dataset(data, **options))
    return view


def _evaluate_into(view: RunView, data) -> None:
    """Fill ``view``'s images, labels and probabilities from ``data``'s test split (its training images, with a
    note, when it has none)."""
    if data.x_test is None:
        view.notes.append(f"{data.name} has no test split (x_test, y_test): no confusion matrix or mistakes; "
                          "the feature maps show a training image")
        view.images, view.y_true = data.x_train, data.y_train
        return
    view.split, view.images, view.y_true = "test", data.x_test, data.y_test
    classifier = Classifier.from_checkpoint(view.checkpoint, threads=view.settings.get("threads"))
    view.probs = classifier.predict_proba(data.x_test, stored=True)  # (N, K), the data set's arrays as stored


def _folder_options(settings: dict, checkpoint: Checkpoint) -> dict:
    """For a run on a folder of images: the checkpoint's image size and channels and the run's test split, so the
    report reads the images as training did (``load_dataset`` refuses these options for other data)."""
    if not Path(str(settings.get("data", "mnist"))).is_dir():
        return {}
    options = {"test_split": settings.get("test_split") or 0.0}
    shape = checkpoint.model.input_shape  # (H, W, C), or None
    if shape and len(shape) == 3 and shape[2] in (1, 3):
        options.update(image_size=tuple(shape[:2]), channels=shape[2])
    return options


def load_run(run_dir, *, evaluate: bool = True) -> RunView:
    """Read a run folder and (with ``evaluate``) run its best checkpoint over the test split of its data."""
    from convnp.data.datasets import load_dataset

    run_dir = check_run_dir(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{run_dir / 'config.json'}: cannot be read ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
        raise ValueError(f"{run_dir / 'config.json'}: lacks the 'settings' of the run")
    results = None
    if (run_dir / "results.json").is_file():
        try:
            results = json.loads((run_dir / "results.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{run_dir / 'results.json'}: cannot be read ({err})") from None
    view = RunView(run_dir, config, read_metrics(run_dir / "metrics.csv"), results, load_checkpoint(run_dir))
    if not evaluate:
        return view

    settings = view.settings
    _evaluate_into(view, load_dataset(settings.get("data", "mnist"), mnist_dir=settings.get("mnist_dir"),
                                      **_folder_options(settings, view.checkpoint)))
    return view


def run_figures(view: RunView, image_index: int = 0) -> dict[str, object]:
    """The report's figures by name (see :data:`FIGURES`); confusion and mistakes only with a test split."""
    from convnp.layers import Conv2D
    from convnp.metrics import confusion_matrix

    require_matplotlib()
    model = view.checkpoint.model
    figures = {"curves": plot_curves(view.history)} if view.history else {}
    first_conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
    if first_conv is not None:
        figures["filters"] = plot_filters(first_conv.params["weight"])
        if view.images is not None:
            n = len(view.images)
            if not -n <= image_index < n:
                raise ValueError(f"image index {image_index} is out of range: the {view.split or 'training'} "
                                 f"split holds {n} images (0 to {n - 1})")
            image = view.checkpoint.prepare(view.images[image_index : image_index + 1 or None])  # (1, H, W, C)
            label = view.class_name(int(view.y_true[image_index]))
            caption = f"{view.split or 'training'} image {image_index % n}, label {label}"
            if view.probs is not None:
                predicted = view.class_name(int(view.y_pred[image_index]))
                caption += f", predicted {predicted} ({view.probs[image_index].max():.1%})"
            figures["feature_maps"] = plot_feature_maps(model, image, title=caption,
                                                        standardize=view.checkpoint.standardize)
    else:
        view.notes.append("the model has no Conv2D layer: no filters or feature maps")
    if view.probs is not None:
        K = view.probs.shape[1]
        names = [view.class_name(k) for k in range(K)]  # the checkpoint's class names label both figures
        figures["confusion"] = plot_confusion(confusion_matrix(view.y_true, view.y_pred, n_classes=K), names)
        figures["mistakes"] = plot_mistakes(view.images, view.y_true, view.y_pred, view.probs.max(axis=1), n=24,
                                            labels=names)
    return figures


def _table(rows, header=None) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    return f"<table>{head}{cells}</table>"


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _image(fig, alt: str) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5em 0}.note{color:#8a5300}
section{margin-bottom:2em}h2{border-bottom:1px solid #ddd}"""


def _filters_text(model) -> str:
    """What the filters figure shows: signed weights (grey models) or RGB pictures (a first Conv2D over 3 channels)."""
    from convnp.layers import Conv2D

    first_conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
    if first_conv is not None and first_conv.params["weight"].shape[2] == 3:
        return ("Each tile is one kernel of the first convolution, its weights for the red, green and blue input "
                "channels drawn as red, green and blue, scaled per kernel from its lowest weight (black) to its "
                "highest (white): the hue shows the colour the kernel responds to.")
    return ("Each tile is one kernel of the first convolution; red weights add to the output where the input is "
            "bright, blue ones subtract.")


def _curves_section(view: RunView, figures: dict) -> list[str]:
    """The learning curves and the last epoch's figures (nothing for a checkpoint without a history)."""
    if "curves" not in figures:
        return []
    last = view.history[-1]
    return ['<section id="curves"><h2>Training curves</h2>', _image(figures["curves"], "loss and accuracy per epoch"),
            _table([[k, last[k]] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy") if k in last],
                   ["last epoch", "value"]), "</section>"]


def render_html(view: RunView, figures: dict) -> str:
    """The report as one HTML document (figures embedded as PNG data URIs)."""
    esc = html.escape
    meta = view.checkpoint.meta
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>convnp report: {esc(view.run_dir.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>convnp run report: {esc(str(view.run_dir))}</h1>",
        f"<p>Written {esc(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))}. "
        f"Model {esc(str(view.settings.get('model', '?')))} on {esc(str(view.settings.get('data', '?')))}; "
        f"plots of {esc(view.checkpoint.path.name)} (epoch {esc(str(meta.get('epoch', '?')))}).</p>",
    ]
    parts += [f'<p class="note">{esc(note)}</p>' for note in view.notes]
    names = meta.get("classes")
    if isinstance(names, list) and names:
        parts.append(f'<p id="classes">{len(names)} classes: {esc(", ".join(map(str, names)))}.</p>')

    parts.append('<section id="settings"><h2>Settings</h2>')
    parts.append(_table(sorted(view.settings.items()), ["setting", "value"]))
    versions = view.config.get("versions")
    if isinstance(versions, dict):
        parts.append(_table(sorted(versions.items()), ["library", "version"]))
    parts.append("</section>")

    parts += _curves_section(view, figures)

    parts.append('<section id="results"><h2>Final metrics</h2>')
    test = (view.results or {}).get("test")
    if isinstance(test, dict):
        rows = [[f"test {k}", v] for k, v in test.items() if not isinstance(v, (dict, list))]
        rows.append(["epochs done", view.results.get("epochs_done")])
        parts.append("<p>From results.json (the model at the end of training):</p>")
        parts.append(_table(rows, ["metric", "value"]))
    else:
        parts.append('<p class="note">No results.json (training has not finished, or the checkpoint is shown '
                     'without its run folder).</p>')
    if view.accuracy is not None:
        parts.append(f"<p>{esc(view.checkpoint.path.name)} on the {len(view.y_true):,} {esc(view.split)} images: "
                     f"accuracy <b>{view.accuracy:.4f}</b>, {int(np.sum(view.y_pred != view.y_true)):,} mistakes.</p>")
    parts.append("</section>")

    sections = [
        ("filters", "First-layer filters", _filters_text(view.checkpoint.model)),
        ("feature_maps", "Feature maps",
         "The output of every convolution for one image, before its activation; left, the image itself."),
        ("confusion", "Confusion matrix", "Rows: true class; columns: predicted class; colour: share of the row."),
        ("mistakes", "Most confident mistakes", "Misclassified images the model was surest of."),
    ]
    for key, heading, text in sections:
        if key in figures:
            parts.append(f'<section id="{key}"><h2>{esc(heading)}</h2><p>{esc(text)}</p>')
            parts.append(_image(figures[key], heading))
            parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir, out=None, *, image_index: int = 0) -> Path:
    """Write the run's self-contained HTML report; returns its path.

    Parameters
    ----------
    run_dir : path of a run folder (``config.json``, ``metrics.csv``, ``best.npz``/``last.npz``)
    out : path, optional
        The HTML file to write; default ``run_dir / "report.html"``.
    image_index : int
        Which test image the feature maps show.

    Raises
    ------
    ValueError
        If ``run_dir`` is not a run folder or a file in it cannot be read.
    ImportError
        If matplotlib is not installed (the message says ``pip install 'convnp[plot]'``).
    """
    require_matplotlib()
    view = load_run(run_dir)
    figures = run_figures(view, image_index)
    out = Path(out) if out is not None else view.run_dir / "report.html"
    out.write_text(render_html(view, figures), encoding="utf-8")
    return out


class ReportCallback(Callback):
    """Write ``report.html`` into the run folder when training ends.

    Without matplotlib it logs one line saying how to install it and returns; any other failure is raised.
    Runs before ``train_run`` writes ``results.json``, so that report's "final metrics" come from its own
    evaluation of ``best.npz`` only; call :func:`write_report` after ``train_run`` returns to include them.
    """

    def __init__(self, run_dir, out=None, *, image_index: int = 0):
        self.run_dir, self.out, self.image_index = Path(run_dir), out, image_index
        self.path: Path | None = None

    def on_train_end(self, logs):
        try:
            require_matplotlib()
        except ImportError as err:
            log.warning("convnp: no report written: %s", err)
            return
        self.path = write_report(self.run_dir, self.out, image_index=self.image_index)
        log.info("report: %s", self.path)
