"""Build the API reference: HTML pages from convnp's docstrings, written by pdoc (``pip install 'convnp[docs]'``).

    bash scripts/docs.sh                    # docs/api/index.html (the folder is not committed)
    .venv/bin/python scripts/docs.py --out DIR

Every public module of the library gets a page. pdoc documents a package's sub-modules only when its ``__all__``
names them, and convnp's ``__all__`` lists names, not modules, so the modules are listed here. The command line's
modules (``convnp.cli``, ``convnp.web.command``) are left out: ``convnp COMMAND --help`` documents them. A warning
from pdoc (a module that cannot be imported, ...) fails the build.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Modules of the command line, documented by --help rather than here.
LEFT_OUT = ("convnp.cli", "convnp.web.command", "convnp.__main__")


def public_modules() -> list[str]:
    """``convnp`` and every sub-module whose dotted name has no part starting with ``_``, minus :data:`LEFT_OUT`.

    A module that its package's ``__all__`` names is left to pdoc, which adds it with the package.
    """
    import convnp

    names = ["convnp"]
    for info in pkgutil.walk_packages(convnp.__path__, "convnp."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if any(info.name == out or info.name.startswith(out + ".") for out in LEFT_OUT):
            continue
        package, _, leaf = info.name.rpartition(".")
        if leaf in getattr(importlib.import_module(package), "__all__", ()):
            continue
        names.append(info.name)
    return names


def _is_named_tuple_init(message: str) -> bool:
    """A warning about a typing.NamedTuple's generated ``__init__``, whose string annotations (``"np.ndarray"``)
    pdoc evaluates outside the module that imported ``np``: the field types themselves are documented fine."""
    match = re.match(r"Error parsing type annotation .* for ([\w.]+)\.__init__\.", message)
    if not match:
        return False
    module, _, name = match.group(1).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def build(out: Path) -> list[str]:
    """Write the reference into ``out``; return pdoc's warnings (empty when the build is clean)."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="numpy", footer_text="convnp API reference", search=True)
    modules = public_modules()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in modules:  # imported first, so that a module that cannot be imported is a warning here too
            try:
                importlib.import_module(name)
            except Exception as err:  # noqa: BLE001 - any import error is reported, with its module
                warnings.warn(f"{name}: cannot be imported ({type(err).__name__}: {err})", stacklevel=1)
        pdoc.pdoc(*modules, output_directory=out)
    return [str(w.message) for w in caught if not _is_named_tuple_init(str(w.message))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build convnp's API reference with pdoc.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "api", help="folder for the HTML pages")
    args = parser.parse_args(argv)
    problems = build(args.out)
    for problem in problems:
        print(f"docs: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"API reference: {args.out / 'index.html'} ({len(public_modules())} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
