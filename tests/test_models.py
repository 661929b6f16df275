"""The model zoo: every builder, the FLOP counts, the recipes and ``convnp models``."""

import dataclasses
import json

import numpy as np
import pytest

from convnp.cli.main import main
from convnp.flops import layer_flops, model_flops
from convnp.gradcheck import check_model
from convnp.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from convnp.sequential import Sequential
from convnp.models import MODELS, RECIPES, get_model
from convnp.train.config import TrainConfig

NAMES = list(MODELS)

# Hand-computed: weights (kH * kW * C_in * C_out or in * out) plus biases, BatchNorm's gamma and beta.
EXPECTED_PARAMS = {
    # conv 3*3*1*8 + 8 = 80; dense 1352*10 + 10 = 13,530
    "notebook": 80 + 13_530,
    # conv 5*5*1*16 + 16 = 416; dense 3136*128 + 128 = 401,536; dense 128*10 + 10 = 1,290
    "sprint": 416 + 401_536 + 1_290,
    # C1 5*5*1*6 + 6 = 156; C3 5*5*6*16 + 16 = 2,416; C5 400*120 + 120 = 48,120; F6 120*84 + 84 = 10,164;
    # out 84*10 + 10 = 850
    "lenet5": 156 + 2_416 + 48_120 + 10_164 + 850,
    # 3*3*1*32 + 32 = 320; 3*3*32*64 + 64 = 18,496; 9216*128 + 128 = 1,179,776; 128*10 + 10 = 1,290
    "convnet": 320 + 18_496 + 1_179_776 + 1_290,
    # bias-free convs 3*3*1*16, 3*3*16*16, 3*3*16*32, 3*3*32*32 and dense 1568*128, each with a BatchNorm
    # (2 * channels), then dense 128*10 + 10
    "best": 144 + 32 + 2_304 + 32 + 4_608 + 64 + 9_216 + 64 + 200_704 + 256 + 1_290,
}


def test_registry_lists_every_zoo_model_with_a_recipe():
    assert NAMES == ["notebook", "sprint", "lenet5", "convnet", "best"]
    assert set(RECIPES) == set(MODELS)


@pytest.mark.parametrize("name", NAMES)
def test_builds_and_maps_a_batch_of_images_to_ten_finite_logits(name):
    model = get_model(name, rng=np.random.default_rng(0))
    assert model.input_shape == (28, 28, 1)
    assert model.shapes()[-1] == (10,)
    assert model.dtype == np.float32
    x = np.random.default_rng(1).standard_normal((3, 28, 28, 1)).astype(np.float32)
    for training in (False, True):
        out = model.forward(x, training=training)
        assert out.shape == (3, 10) and out.dtype == np.float32
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_the_hand_count(name):
    assert get_model(name, rng=np.random.default_rng(0)).n_params == EXPECTED_PARAMS[name]


def test_lenet5_is_glorot_initialised_tanh_with_average_pools():
    model = get_model("lenet5", rng=np.random.default_rng(0))
    kinds = [type(layer).__name__ for layer in model]
    assert kinds.count("Tanh") == 4 and kinds.count("AvgPool2D") == 2 and "ReLU" not in kinds
    assert model.shapes()[:7] == [(28, 28, 6), (28, 28, 6), (14, 14, 6), (10, 10, 16), (10, 10, 16), (5, 5, 16), (400,)]
    # Glorot-uniform weights lie within +-sqrt(6 / (fan_in + fan_out)): C1 has fan_in 25, fan_out 150.
    assert np.abs(model[0].params["weight"]).max() <= np.sqrt(6 / (25 + 150))


def test_best_fits_its_compute_budget():
    # The design constraint stated in best's docstring: at most ~40 MFLOP per training image.
    flops = model_flops(get_model("best", rng=np.random.default_rng(0)))
    assert flops["train"] < 40e6


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights_and_masks_without_touching_global_state(name):
    np.random.seed(7)
    global_state = np.random.get_state()
    a = get_model(name, rng=np.random.default_rng(3))
    b = get_model(name, rng=np.random.default_rng(3))
    c = get_model(name, rng=np.random.default_rng(4))
    get_model(name)  # rng=None: a fresh Generator, still not the global one
    after = np.random.get_state()
    assert global_state[0] == after[0] and np.array_equal(global_state[1], after[1]) and global_state[2:] == after[2:]
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert any(not np.array_equal(sa[k], sc[k]) for k in sa if k.endswith("weight") and sa[k].size > 100)
    # Dropout masks come from Generators spawned from the same seed: training outputs agree too.
    x = np.random.default_rng(5).standard_normal((4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


@pytest.mark.parametrize("name", ["sprint", "convnet", "best"])
def test_dropout_layers_have_their_own_generators(name):
    rng = np.random.default_rng(0)
    model = get_model(name, rng=rng)
    dropouts = [layer for layer in model if isinstance(layer, Dropout)]
    assert dropouts and all(layer.rng is not rng for layer in dropouts)
    assert len({id(layer.rng) for layer in dropouts}) == len(dropouts)


@pytest.mark.parametrize("name", ["sprint", "lenet5", "convnet", "best"])
def test_rng_must_be_a_generator(name):
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        get_model(name, rng=0)


@pytest.mark.parametrize("name", NAMES)
def test_float64_gradients_match_finite_differences(name):
    rng = np.random.default_rng(0)
    model = get_model(name, rng=rng, dtype=np.float64)
    assert model.dtype == np.float64
    # BatchNorm1D over a batch of 2 maps each feature to +-gamma whatever came in, so the gradient reaching the
    # dense layer before it is rounding noise; 4 samples give it a real value.
    batch_size = 4 if name == "best" else 2
    rows = check_model(model, rng, batch_size=batch_size, max_coords=32)
    failed = [(r.component, r.where, r.worst) for r in rows if not r.passed]
    assert not failed, failed


@pytest.mark.parametrize("name", NAMES)
def test_config_survives_a_json_round_trip(name):
    model = get_model(name, rng=np.random.default_rng(0))
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = Sequential.from_config(config)
    assert rebuilt.get_config() == model.get_config()
    assert [repr(layer) for layer in rebuilt] == [repr(layer) for layer in model]
    assert rebuilt.input_shape == model.input_shape and rebuilt.n_params == model.n_params
    rebuilt.load_state_dict(model.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.forward(x), model.forward(x))


# ---- FLOPs ----------------------------------------------------------------------------------------------------------
def test_flops_of_a_tiny_conv_dense_model_by_hand():
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(1, 2, 3, rng=rng), ReLU(), Flatten(), Dense(18, 4, rng=rng)], input_shape=(5, 5, 1))
    conv = 2 * 3 * 3 * 3 * 3 * 1 * 2 + 3 * 3 * 2  # products of a 3x3 output, plus one bias add per output
    relu = 3 * 3 * 2
    dense = 2 * 18 * 4 + 4
    flops = model_flops(model)
    assert flops["forward"] == conv + relu + dense == 508
    # First layer: forward + weight gradient, no input gradient; ReLU: forward + input gradient;
    # Dense: forward + weight gradient (with the bias sums) + input gradient (products only).
    assert flops["train"] == 2 * conv + 2 * relu + (2 * dense + 2 * 18 * 4) == 1160
    rows = flops["layers"]
    assert [r["forward"] for r in rows] == [conv, relu, 0, dense]
    assert rows[0]["input_grad"] == 0 and rows[3]["input_grad"] == 2 * 18 * 4
    assert sum(r["train"] for r in rows) == flops["train"]
    assert rows[0]["output_shape"] == [3, 3, 2]


def test_flops_of_the_notebook_net():
    flops = model_flops(get_model("notebook", rng=np.random.default_rng(0)))
    conv = 2 * 26 * 26 * 9 * 1 * 8  # 97,344
    dense = 2 * 1352 * 10  # 27,040
    maps = 26 * 26 * 8  # conv outputs: one bias add and one ReLU each
    pool = 2 * 2 * 13 * 13 * 8  # one operation per window element
    assert (conv, dense) == (97_344, 27_040)
    assert flops["forward"] == conv + maps + maps + pool + dense + 10 == 140_618
    assert flops["train"] == 2 * (conv + maps) + 2 * maps + 2 * pool + 3 * dense + 2 * 10 == 308_276


def test_layer_flops_rules_for_element_wise_layers():
    shape = (4, 4, 3)  # 48 elements
    assert layer_flops(Conv2D(3, 5, 3, padding="same", bias=False, rng=np.random.default_rng(0)), shape) == (
        2 * 4 * 4 * 9 * 3 * 5
    )
    assert layer_flops(Dense(48, 7, bias=False, rng=np.random.default_rng(0)), (48,)) == 2 * 48 * 7
    assert layer_flops(BatchNorm2D(3), shape) == 2 * 48
    assert layer_flops(BatchNorm1D(48), (48,)) == 2 * 48
    for layer in (ReLU(), Tanh(), Sigmoid(), Dropout(0.5, rng=np.random.default_rng(0))):
        assert layer_flops(layer, shape) == 48
    assert layer_flops(MaxPool2D(2), shape) == 4 * (2 * 2 * 3)
    assert layer_flops(AvgPool2D(2, stride=1), shape) == 4 * (3 * 3 * 3)
    assert layer_flops(GlobalAvgPool2D(), shape) == 48
    assert layer_flops(Flatten(), shape) == 0


def test_flops_refuses_unknown_layers_and_missing_shapes():
    class Mystery(Layer):
        def output_shape(self, input_shape):
            return input_shape

    with pytest.raises(TypeError, match="no FLOP rule for layer type Mystery; known: AvgPool2D"):
        layer_flops(Mystery(), (2, 2, 1))
    model = Sequential([Flatten(), Dense(4, 2, rng=np.random.default_rng(0))])
    with pytest.raises(ValueError, match=r"no input_shape; pass input_shape=\(H, W, C\)"):
        model_flops(model)
    assert model_flops(model, (2, 2, 1))["forward"] == 2 * 4 * 2 + 2


@pytest.mark.parametrize("name", NAMES)
def test_training_costs_two_to_three_forwards(name):
    flops = model_flops(get_model(name, rng=np.random.default_rng(0)))
    assert 2 * flops["forward"] < flops["train"] < 3 * flops["forward"]


# ---- recipes --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_recipes_are_valid_train_configs(name):
    recipe = RECIPES[name]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(recipe) <= fields - {"model", "data"}, set(recipe) - fields
    config = TrainConfig(model=name, **recipe)
    assert all(getattr(config, k) == v for k, v in recipe.items())


def test_time_to_accuracy_defaults_are_sprints_recipe():
    """``benchmarks/time_to_accuracy.py`` with no options races ``sprint`` with the recipe the zoo gives it."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_accuracy.py"
    spec = importlib.util.spec_from_file_location("time_to_accuracy", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parser().parse_args([])
    recipe = RECIPES[args.model]
    assert args.model == "sprint" and not recipe.get("augment", False)  # the race has no augmentation
    assert (args.epochs, args.batch_size, args.lr, args.weight_decay, args.schedule) == (
        recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["weight_decay"], recipe["schedule"])
    # The script's "nesterov" is SGD with Nesterov momentum 0.9.
    assert args.optimizer == "nesterov"
    assert (recipe["optimizer"], recipe["momentum"], recipe["nesterov"]) == ("momentum", 0.9, True)


def test_sprint_has_one_convolution_with_relu_after_its_pool():
    model = get_model("sprint", rng=np.random.default_rng(0))
    kinds = [type(layer).__name__ for layer in model]
    assert kinds[:3] == ["Conv2D", "MaxPool2D", "ReLU"] and kinds.count("Conv2D") == 1
    assert model[0].kernel_size == (5, 5) and model.shapes()[1] == (14, 14, 16)


# ---- the command line -----------------------------------------------------------------------------------------------
def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{EXPECTED_PARAMS[name]:,}" in line
    assert "LeNet-5" in out and "0.14" in out and "0.31" in out  # the notebook's forward / train MFLOP


def test_readme_zoo_table_is_what_convnp_models_prints(capsys):
    """The README's ``convnp models`` block: every row, figure for figure, as the command prints it today."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("`convnp models` lists the networks", 1)[1].split("```\n", 2)[1]
    documented = [line for line in block.splitlines() if line.split(" ", 1)[0] in NAMES]
    assert main(["models"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.split(" ", 1)[0] in NAMES]
    assert len(documented) == len(NAMES)
    assert [line.split() for line in documented] == [line.split() for line in printed]


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == NAMES
    by_name = {r["name"]: r for r in rows}
    assert {n: r["params"] for n, r in by_name.items()} == EXPECTED_PARAMS
    assert by_name["notebook"]["forward_flops"] == 140_618 and by_name["notebook"]["train_flops"] == 308_276
    assert by_name["lenet5"]["layers"] == 12
    assert by_name["best"]["training"]["epochs"] == RECIPES["best"]["epochs"]
    assert by_name["notebook"]["recipe"] == {} and by_name["notebook"]["training"]["epochs"] == TrainConfig().epochs
    assert all(r["description"] for r in rows)


def test_models_name_shows_summary_flops_and_recipe(capsys):
    assert main(["models", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "total parameters: 61,706" in out
    assert "AvgPool2D" in out and "MFLOP" in out
    assert "lr=0.05" in out and "epochs=10" in out
    assert main(["models", "best", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == EXPECTED_PARAMS["best"] and len(info["flops_by_layer"]) == 20
    assert sum(r["train"] for r in info["flops_by_layer"]) == info["train_flops"]


def test_models_unknown_name_is_one_clear_error(capsys):
    assert main(["models", "vgg"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "convnp: error: unknown model 'vgg'; choose one of: notebook, sprint, lenet5, convnet, best"


# ---- a short training run --------------------------------------------------------------------------------------------
def test_best_learns_on_a_small_mnist_subset(mnist):
    from convnp.data.transforms import to_float_images
    from convnp.losses import SoftmaxCrossEntropy
    from convnp.optim import SGD
    from convnp.train import evaluate, fit

    x_train, y_train, x_test, y_test = mnist
    x, y = to_float_images(x_train[:1000]), y_train[:1000].astype(np.int64)
    x_val, y_val = to_float_images(x_test[:500]), y_test[:500].astype(np.int64)
    # The loss before training, on a twin with the same initial weights (so the trained model's state is untouched).
    start = SoftmaxCrossEntropy().forward(get_model("best", rng=np.random.default_rng(0)).forward(x, training=True), y)
    model = get_model("best", rng=np.random.default_rng(0))
    history = fit(model, x, y, optimizer=SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4), epochs=2,
                  batch_size=32, rng=np.random.default_rng(1))
    assert start > 2.0  # about ln(10): an untrained network guesses
    assert history[-1]["loss"] < start / 4, (start, [h["loss"] for h in history])
    assert evaluate(model, x_val, y_val)["accuracy"] > 0.85
