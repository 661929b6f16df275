"""Every subcommand's --help ends with two or three examples that parse as written, keeps argparse's wrapped
description and shown defaults, and ``convnp --version`` names the version."""

import shlex

import pytest

from convnp.cli.main import EXAMPLES, build_parser, main
from convnp.version import __version__


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")  # argparse keeps subparsers here
    return action.choices


def test_every_subcommand_has_examples():
    assert set(_subcommands()) <= set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_help_ends_with_examples_that_parse(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = _subcommands()[name].format_help()
    head, marker, tail = text.partition("\nexamples:\n")
    assert marker, f"convnp {name} --help has no examples"
    examples = [line.strip() for line in tail.splitlines() if line.strip()]
    assert 2 <= len(examples) <= 3 and examples == [e.strip() for e in EXAMPLES[name]]
    for example in examples:
        words = shlex.split(example, comments=True)
        assert words[:2] == ["convnp", name], example
        args = build_parser().parse_args(words[1:])  # a bad option would exit 2 here
        assert args.command == name
    # The rest is argparse's usual help: wrapped to the terminal, each default shown.
    assert max(len(line) for line in head.splitlines()) <= 80
    if "--batch-size" in head or "--port" in head or "--top" in head:
        assert "(default: " in head


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"convnp {__version__}"
