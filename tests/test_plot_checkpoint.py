"""convnp plot on a checkpoint file outside a run folder (an imported network, a copied best.npz): the filters, and
with --data the feature maps, confusion matrix and mistakes on that data; no curves without a history."""

from __future__ import annotations

import numpy as np
import pytest
from colour_model import NAMES, noisy, train_colour_model

from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.cli.main import main

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A trained colour network saved alone (model, class names, preparation), as convnp import writes one, and an
    .npz of named pictures to show it on."""
    tmp = tmp_path_factory.mktemp("bare")
    source = load_checkpoint(train_colour_model(tmp) / "best.npz")
    path = tmp / "alone" / "colours.npz"
    path.parent.mkdir()
    save_checkpoint(path, source.model, meta={k: source.meta[k] for k in ("model_name", "classes", "preprocessing")})
    rng = np.random.default_rng(5)
    y = np.array(NAMES)[np.arange(36) % 12]
    np.savez(tmp / "pictures.npz", x=noisy(y, rng), y=y, x_test=noisy(y, rng), y_test=y)
    return path, tmp / "pictures.npz"


def test_a_checkpoint_file_is_drawn_on_the_data_given(bare, tmp_path, capsys):
    path, data = bare
    assert main(["plot", str(path), "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"filters.png", "feature_maps.png", "confusion.png", "mistakes.png", "report.html"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "12 classes: black, blue, brown" in html and 'id="curves"' not in html
    assert "on the 36 test images: accuracy <b>1.0000</b>" in html  # the colours are told apart
    assert "without its run folder" in html


def test_without_data_only_the_filters_and_beside_the_file_by_default(bare, capsys):
    path, _ = bare
    assert main(["plot", str(path)]) == 0
    out = path.parent / "colours-report"
    assert {p.name for p in out.iterdir()} == {"filters.png", "report.html"}
    assert "note: no --data given" in capsys.readouterr().err


def test_data_with_a_run_folder_is_one_line(tmp_path, capsys):
    run = train_colour_model(tmp_path)
    assert main(["plot", str(run), "--data", "mnist"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data and --test-split apply to a checkpoint file" in err[0]
