"""benchmarks/bench.py, the speed benchmark behind benchmarks/RESULTS.md: a short run end to end, with PyTorch and
without it, and the rewrite of RESULTS.md that keeps the other benchmarks' sections."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _quick_run(tmp_path: Path, hide_torch: bool, isa: str = "native") -> str:
    env = dict(os.environ)
    if hide_torch:  # a module named torch that fails to import, first on the path of every worker process
        (tmp_path / "torch.py").write_text("raise ImportError('PyTorch hidden by the test')\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    args = [sys.executable, str(BENCH), "--quick", "--nets", "notebook", "--threads", "1", "--repeats", "1",
            "--isa", isa, "--out", "-"]
    # The benchmark's own loops run for a time (0.3 s, at least 3 steps) and so take longer on a slower or busier
    # machine; the timeout only stops a hung run (38 s on 2 busy cores), a little before pytest-timeout's limit so
    # that the run's own output is shown.
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _bench():
    """benchmarks/bench.py as a module (its folder on sys.path for the import only)."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH.parent))
    return bench


def _row(table: str, net: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {net} | 1 | 128 |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_quick_run_without_pytorch_gives_convnp_figures_only_and_names_the_capped_machine(tmp_path):
    """Also run capped to AVX2: the heading names the class, the machine line the variables and the kernels
    OpenBLAS chose under them."""
    out = _quick_run(tmp_path, hide_torch=True, isa="avx2")
    assert "PyTorch not installed" in out
    heading = next(line for line in out.splitlines() if line.startswith("## convnp vs PyTorch"))
    assert heading.startswith("## convnp vs PyTorch, AVX2 (capped): ")
    assert "capped by OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2" in out
    if "openblas" in out.lower():
        assert "Haswell kernels" in out
    cells = _row(out, "notebook")
    assert len(cells) == 11
    assert float(cells[3].split()[0].replace(",", "")) > 0  # convnp's training images/s
    assert cells[4] == cells[5] == cells[7] == cells[8] == cells[10] == "-"
    assert "% of " in cells[9]
    assert "| notebook |" in out.split("Peak memory")[1]


def test_quick_run_with_pytorch_gives_ratios(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch not installed: nothing to compare against")
    out = _quick_run(tmp_path, hide_torch=False)
    assert "Machine: " in out and "cores" in out and "BLAS: " in out and "PyTorch's CPU capability " in out
    cells = _row(out, "notebook")
    train, theirs = (float(cells[i].split()[0].replace(",", "")) for i in (3, 4))
    assert abs(float(cells[5].rstrip("x")) - train / theirs) < 0.011  # the table rounds the images/s it shows
    assert cells[10].endswith("%)") and cells[8].endswith("x")
    memory = next(line for line in out.split("Peak memory")[1].splitlines() if line.startswith("| notebook |"))
    assert memory.rstrip(" |").endswith("x")  # convnp / PyTorch peak memory


def test_results_rewrite_replaces_its_cpu_class_and_keeps_every_other_section(tmp_path):
    write_results = _bench().write_results
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## convnp vs PyTorch, AVX2: an earlier machine\n\nold machine\n\n"
                       "## Web server under load\n\nits table\n")
    write_results(results, "## convnp vs PyTorch, AVX-512: CPU X\n\nfirst table\n")
    write_results(results, "## convnp vs PyTorch, AVX2 (capped): CPU X\n\ncapped table\n")
    write_results(results, "## convnp vs PyTorch, AVX-512: CPU X\n\nnew table\n")
    text = results.read_text()
    assert "first table" not in text and text.count("## convnp vs PyTorch, AVX-512: CPU X") == 1
    for kept in ("old machine", "## Web server under load\n\nits table", "capped table", "new table"):
        assert kept in text


def test_section_heading_keeps_the_whole_cpu_name():
    """The CPU's name ends at the first ", " outside parentheses: "(family 6, model 167)" stays whole."""
    section_heading = _bench().section_heading
    vm = "Intel(R) Xeon(R) Processor (family 6, model 167), a virtual machine, 2 cores, AVX2/AVX-512/AMX; BLAS: b"
    assert section_heading({"machine": vm}, "native") == \
        "## convnp vs PyTorch, AVX-512: Intel(R) Xeon(R) Processor (family 6, model 167)"
    assert section_heading({"machine": vm}, "avx2").startswith("## convnp vs PyTorch, AVX2 (capped): Intel(R) Xeon")
    assert section_heading({"machine": "x86_64, 2 cores, AVX2"}, "native") == "## convnp vs PyTorch, AVX2: x86_64"
