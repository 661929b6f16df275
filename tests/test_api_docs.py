"""The API reference (scripts/docs.py, pdoc) builds without a warning, every public name has a docstring, and every
cross-reference in a docstring (``:func:`convnp.x```, ``:class:`~convnp.y.Z```, ...) names something that exists."""

import builtins
import importlib
import importlib.util
import inspect
import re
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A Sphinx-style role in a docstring and its target, with an optional ``~`` and call parentheses.
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):`~?([\w.]+?)(?:\(\))?`")
#: Targets outside convnp, which the reference does not link: their first name is enough.
FOREIGN = {"np", "numpy", "matplotlib", "PIL", "onnx", "fastapi", "uvicorn", "pydantic", "mpi4py", "argparse",
           "os", "pathlib", "threading", "multiprocessing", "concurrent", "json", "zipfile", "logging", "socket"}


def _docs_script():
    spec = importlib.util.spec_from_file_location("convnp_docs_script", ROOT / "scripts" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_names(module: types.ModuleType) -> list[str]:
    """The names the reference shows for ``module``: its ``__all__``, else the public functions and classes it
    defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name, obj in vars(module).items() if not name.startswith("_")
                 and (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__]
    return list(names)


def missing_docstrings(module: types.ModuleType) -> list[str]:
    """``module`` itself and each function or class among its public names that has no docstring of its own."""
    missing = [] if (module.__doc__ or "").strip() else [module.__name__]
    for name in public_names(module):
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
            missing.append(f"{module.__name__}.{name}")
    return missing


def _resolves(target: str, module: types.ModuleType, owner: type | None) -> bool:
    parts = target.split(".")
    if parts[0] in FOREIGN:
        return True
    if parts[0] == "convnp":
        for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            return _has_path(obj, parts[i:])
        return False
    bases = [owner, module, builtins] if owner is not None else [module, builtins]
    if any(_has_path(base, parts) for base in bases):
        return True
    # An attribute an instance gets in the class's own methods (``self.total = ...``).
    methods = [m for m in vars(owner).values() if inspect.isfunction(m)] if owner is not None else []
    return len(parts) == 1 and any(parts[0] in m.__code__.co_names for m in methods)


def _has_path(obj, parts) -> bool:
    for part in parts:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def broken_references(module: types.ModuleType) -> list[str]:
    """Every role target in the docstrings of ``module``, its functions, classes and their members that names
    nothing: a name is looked up as written from ``convnp``, else in the class, the module and the builtins."""
    docs = [(module.__doc__, None, module.__name__)]
    for name, obj in vars(module).items():
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module.__name__:
            continue
        owner = obj if inspect.isclass(obj) else None
        docs.append((obj.__doc__, owner, f"{module.__name__}.{name}"))
        for member_name, member in (vars(obj).items() if owner else ()):
            function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            docs.append((getattr(function, "__doc__", None), owner, f"{module.__name__}.{name}.{member_name}"))
    return [f"{where}: `{target}`" for doc, owner, where in docs if isinstance(doc, str)
            for target in ROLE.findall(doc) if not _resolves(target, module, owner)]


@pytest.fixture(scope="module")
def modules():
    return [importlib.import_module(name) for name in _docs_script().public_modules()]


def test_every_public_name_has_a_docstring(modules):
    assert len(modules) > 50  # every sub-module, not only the packages
    assert [name for module in modules for name in missing_docstrings(module)] == []


def test_every_cross_reference_names_something(modules):
    assert [ref for module in modules for ref in broken_references(module)] == []


def test_the_checks_find_a_missing_docstring_and_a_broken_reference():
    module = types.ModuleType("convnp_fake", "See :func:`convnp.pretrained.resolve` and :class:`Thing`.")

    def undocumented():
        pass

    def documented():
        """Like :func:`convnp.pretrained.nowhere`, or :meth:`~convnp.checkpoint.Checkpoint.prepare`."""

    class Thing:
        """Counts :attr:`total` and :attr:`missing`."""

        def __init__(self):
            self.total = 0

    for obj in (undocumented, documented, Thing):
        obj.__module__ = "convnp_fake"
        setattr(module, obj.__name__, obj)
    assert missing_docstrings(module) == ["convnp_fake.undocumented"]
    assert broken_references(module) == ["convnp_fake.documented: `convnp.pretrained.nowhere`",
                                         "convnp_fake.Thing: `missing`"]


@pytest.mark.timeout(600)
def test_the_reference_builds_without_a_warning(tmp_path):
    pytest.importorskip("pdoc")
    docs = _docs_script()
    assert docs.build(tmp_path) == []
    assert (tmp_path / "index.html").is_file()
    for name in ("convnp", "convnp.pretrained", "convnp.checkpoint", "convnp.layers.conv", "convnp.train.loop"):
        page = tmp_path / (name.replace(".", "/") + ".html")
        assert page.is_file(), page
    page = (tmp_path / "convnp" / "pretrained.html").read_text()
    assert "def resolve" in page or "resolve(" in page
    assert not (tmp_path / "convnp" / "cli").exists()  # the command line is documented by --help
