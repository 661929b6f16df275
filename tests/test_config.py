"""The training settings' one source: every TrainConfig field carries its flag, and ``convnp train``'s options are
generated from the fields; a parse holds exactly the settings typed; the model's recipe, then the typed settings,
make the run (TrainConfig.resolve); a bad value is argparse's exit 2 naming the flag."""

import dataclasses
import os

import pytest

from convnp.cli.main import build_parser, main
from convnp.cli.train import option_name, typed_settings
from convnp.models import RECIPES
from convnp.train.config import Flag, TrainConfig
from convnp.train.parsers import absolute_path

FLAGS = TrainConfig.flags()

# A value typed for each field, and the value the field then gets (a pair's flag sets both of its fields).
TYPED = {
    "model": (["--model", "lenet5"], "lenet5"),
    "data": (["--data", "toy.npz"], "toy.npz"),
    "image_height": (["--image-size", "32", "24"], 32),
    "image_width": (["--image-size", "32", "24"], 24),
    "channels": (["--channels", "1"], 1),
    "test_split": (["--test-split", "0.25"], 0.25),
    "epochs": (["--epochs", "3"], 3),
    "batch_size": (["--batch-size", "16"], 16),
    "optimizer": (["--optimizer", "adam"], "adam"),
    "lr": (["--lr", "0.05"], 0.05),
    "momentum": (["--momentum", "0.5"], 0.5),
    "nesterov": (["--nesterov"], True),
    "weight_decay": (["--weight-decay", "1e-4"], 1e-4),
    "schedule": (["--schedule", "step"], "step"),
    "warmup_epochs": (["--warmup-epochs", "0.5"], 0.5),
    "step_epochs": (["--step-epochs", "3"], 3),
    "step_gamma": (["--step-gamma", "0.5"], 0.5),
    "clip_grad_norm": (["--clip-grad-norm", "1.5"], 1.5),
    "patience": (["--patience", "2"], 2),
    "seed": (["--seed", "7"], 7),
    "val_split": (["--val-split", "0.2"], 0.2),
    "limit": (["--limit", "100"], 100),
    "init": (["--init", "runs/x"], "runs/x"),
    "mnist_dir": (["--mnist-dir", "idx"], os.path.abspath("idx")),
    "threads": (["--threads", "2"], 2),
    "backend": (["--backend", "threads"], "threads"),
    "label_smoothing": (["--label-smoothing", "0.1"], 0.1),
    "augment": (["--augment"], True),
    "max_shift": (["--max-shift", "3"], 3.0),
    "max_rotation": (["--max-rotation", "15"], 15.0),
    "scale_min": (["--scale-range", "0.8", "1.2"], 0.8),
    "scale_max": (["--scale-range", "0.8", "1.2"], 1.2),
    "elastic_alpha": (["--elastic", "34", "5"], 34.0),
    "elastic_sigma": (["--elastic", "34", "5"], 5.0),
    "skip_nonfinite": (["--skip-nonfinite", "2"], 2),
    "crop_padding": (["--crop-padding", "4"], 4),
    "hflip": (["--hflip"], True),
    "brightness": (["--brightness", "0.2"], 0.2),
    "contrast": (["--contrast", "0.3"], 0.3),
}


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_every_field_has_a_flag_with_help_and_its_default_in_train_help(capsys):
    assert set(FLAGS) == {f.name for f in dataclasses.fields(TrainConfig)} == set(TYPED)
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    help_text = "".join(capsys.readouterr().out.split())  # without the wrapping (which may break after a hyphen)
    defaults = TrainConfig()
    for name, flag in FLAGS.items():
        assert isinstance(flag, Flag) and flag.help.strip(), name
        assert option_name(name, flag) in help_text, name
        if flag.pair_of is None:  # a pair's help is its first field's
            default = getattr(defaults, name)
            if flag.pair is not None:
                default = (default, getattr(defaults, flag.pair))
            shown = flag.shown if flag.shown is not None else default
            assert "".join(f"{flag.help} (default: {shown})".split()) in help_text, name
    for option in ("--out", "--resume", "--no-report", "--distributed", "--debug"):  # not settings: as they were
        assert option in help_text


def test_the_flag_names_follow_the_fields():
    assert option_name("batch_size", FLAGS["batch_size"]) == "--batch-size"
    assert option_name("scale_min", FLAGS["scale_min"]) == "--scale-range"
    assert option_name("scale_max", FLAGS["scale_max"]) == "--scale-range"
    assert option_name("elastic_sigma", FLAGS["elastic_sigma"]) == "--elastic"


@pytest.mark.parametrize("name", list(TYPED))
def test_a_flag_typed_gives_its_field_and_nothing_else(name):
    argv, value = TYPED[name]
    typed = typed_settings(parse(*argv))
    assert typed[name] == value and type(typed[name]) is type(value)
    flag = FLAGS[name]
    pair = {name, flag.pair or flag.pair_of} - {None}
    assert set(typed) == pair
    assert getattr(TrainConfig(**typed), name) == value


def test_untyped_flags_are_absent_even_when_a_typed_one_equals_its_default():
    assert typed_settings(parse()) == {}
    assert TrainConfig(**typed_settings(parse())) == TrainConfig()
    args = parse("--epochs", str(TrainConfig().epochs), "--out", "r", "--no-report")
    assert typed_settings(args) == {"epochs": TrainConfig().epochs}  # typed: it will beat a recipe's epochs
    assert args.out == "r" and args.no_report  # options that are not settings parse as before
    typed = typed_settings(parse("--seed=3", "--augment", "--elastic", "30", "4"))
    assert typed == {"seed": 3, "augment": True, "elastic_alpha": 30.0, "elastic_sigma": 4.0}


def test_the_mnist_folder_is_made_absolute():
    assert typed_settings(parse("--mnist-dir", "some/idx"))["mnist_dir"] == os.path.abspath("some/idx")
    assert absolute_path("") is None


def test_resolve_takes_the_defaults_then_the_recipe_then_the_settings_given():
    assert TrainConfig.resolve() == TrainConfig()
    for model, recipe in RECIPES.items():
        assert TrainConfig.resolve(model=model) == TrainConfig(model=model, **recipe)
    lenet = RECIPES["lenet5"]
    assert lenet["epochs"] != TrainConfig().epochs and lenet["lr"] is not None
    config = TrainConfig.resolve(model="lenet5", epochs=TrainConfig().epochs, seed=4)
    # A setting given beats the recipe even when it equals the default; the others come from the recipe.
    assert config.epochs == TrainConfig().epochs and config.seed == 4
    assert config.lr == lenet["lr"] and config.augment is lenet["augment"]
    assert TrainConfig.resolve(lr=0.3) == TrainConfig(lr=0.3)  # the default model's recipe is empty


def test_resolve_refuses_unknown_and_bad_settings():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['epoch'\]"):
        TrainConfig.resolve(epoch=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        TrainConfig.resolve(model="sprint", batch_size=0)


def test_the_cli_uses_the_recipe_then_the_typed_settings():
    typed = typed_settings(parse("--model", "sprint", "--epochs", "2"))
    config = TrainConfig.resolve(**typed)
    assert config.epochs == 2 and config.batch_size == RECIPES["sprint"]["batch_size"]


def _bad_value(name: str, flag: Flag) -> list[str]:
    """Tokens after the flag that it must refuse."""
    if flag.choices:
        return ["nope"]
    if flag.pair:
        return ["1"]  # one value where two are needed
    if isinstance(getattr(TrainConfig(), name), bool):
        return []  # the flag is completed below as --flag=yes
    if flag.parse in (None, absolute_path):
        return []  # any text goes: a missing value is the error
    return ["x"]


@pytest.mark.parametrize("name", [n for n, f in FLAGS.items() if f.pair_of is None])
def test_a_bad_value_exits_2_naming_the_flag(name, capsys, tmp_path):
    flag = FLAGS[name]
    option = option_name(name, flag)
    argv = [option, *_bad_value(name, flag)]
    if isinstance(getattr(TrainConfig(), name), bool):
        argv = [f"{option}=yes"]
    with pytest.raises(SystemExit) as stop:
        main(["train", "--out", str(tmp_path / "r"), *argv])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"convnp train: error: argument {option}: "), last
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "convnp train: error: argument --epochs: expected a positive integer, got '0'"),
        (["--seed", "x"], "convnp train: error: argument --seed: invalid int value: 'x'"),  # argparse's, for int
        (["--optimizer", "rmsprop"], "convnp train: error: argument --optimizer: invalid choice: 'rmsprop'"),
        (["--scale-range", "1.2", "0.8"],
         "convnp train: error: argument --scale-range: expected MIN <= MAX, got MIN=1.2 and MAX=0.8"),
        (["--epoch", "3"], "convnp: error: unrecognized arguments: --epoch 3"),  # no abbreviations
    ],
)
def test_bad_values_give_one_line_saying_what_was_expected(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", *argv])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)
