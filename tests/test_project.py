"""The project's promises about itself: the README opens with the two commands, CI runs the test one, and the
core imports nothing but NumPy."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, flags=re.S)
    assert first_block and readme.index("```bash") < 200, "the two commands must open the README"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci.splitlines()
    for script in ("demo.sh", "test.sh"):
        assert (ROOT / "scripts" / script).is_file()


def test_core_imports_numpy_only():
    """Under src/convnp, third-party imports are NumPy at module level; optional extras only inside functions."""
    allowed_top = {"numpy", "convnp", "__future__"}
    optional = {"PIL", "matplotlib", "fastapi", "uvicorn", "pydantic", "starlette", "mpi4py", "onnx"}
    forbidden = {"torch", "tensorflow", "jax", "sklearn", "keras", "cupy", "numba", "scipy"}
    import sys

    stdlib = set(sys.stdlib_module_names)
    for path in (ROOT / "src" / "convnp").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module.split(".")[0]]
            else:
                continue
            for name in names:
                assert name not in forbidden, f"{path}: imports {name}"
                if name in stdlib or name in allowed_top:
                    continue
                assert name in optional, f"{path}: imports {name}, neither NumPy, the standard library nor an extra"
                top_level = node in tree.body
                assert not top_level or "web" in path.parts or "viz" in path.parts, (
                    f"{path}: imports the optional {name} at module level"
                )
