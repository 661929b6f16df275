"""docs/tutorial.ipynb runs top to bottom in a real Jupyter kernel (nbclient), on a small slice of MNIST set in its
parameters cell, and draws its figures; the repository keeps it without outputs."""

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
#: What the test runs on: enough to train, look and classify, small enough for seconds.
SMALL = "N_TRAIN, N_TEST, EPOCHS = 2000, 1000, 1"


def test_the_repository_keeps_the_notebook_small_and_without_outputs():
    nb = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert TUTORIAL.stat().st_size < 40_000
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and "N_TRAIN = 60_000" in tagged[0].source


@pytest.mark.mnist
@pytest.mark.timeout(600)
def test_the_tutorial_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(TUTORIAL, as_version=4)
    parameters = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source += "\n" + SMALL  # as papermill injects parameters: after the defaults
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "(4, 26, 26, 8)" in text and "(4, 13, 13, 8)" in text and "(4, 1352)" in text  # the shapes printed
    assert "all gradients match" in text
    assert "test accuracy:" in text and "on 1,000 images" in text
    assert "my_digit.png: 7" in text  # the drawn 7, read by the pretrained model
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    # digits, curves, filters, feature maps, mistakes, confusion, the drawing
    assert len(figures) >= 7, json.dumps([sorted(o.get("data", {})) for o in outputs])
