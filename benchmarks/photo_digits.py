"""Digits as people photograph them: MNIST test digits printed on paper and "photographed", scored per condition.

    python benchmarks/photo_digits.py CHECKPOINT [CHECKPOINT ...] [--n 300] [--seed 0] [--baseline OLD.json]

Each of ``--n`` MNIST test digits (a seeded sample, the same digits in every condition) is enlarged into a
240-360 px "photo" of dark ink on paper, then one condition is applied: even light (the control), a lighting
gradient that takes 90 grey levels off the paper from one side to the other, sensor noise (sd 6 per channel), JPEG
at quality 60, a soft shadow across one corner, optical blur, the page turned by up to 10 degrees, coloured ink
(blue, red, pencil grey), coloured paper, a small digit off-centre, the issue's two combinations and all at once;
blank pages under uneven light (right when refused); typed digits are ``0``-``9`` in every TrueType font
``fc-list`` knows, dark on white; rows of 4-6 digits (``--n / 3`` of them, some touching) are read as numbers by
``convnp read``'s :func:`~convnp.reading.read_number_file`. Every picture is drawn from its own
``np.random.Generator`` seeded by (seed, the condition's place in :data:`CONDITIONS`, digit), so a condition's
pictures do not depend on ``--n`` or on which conditions are run (adding a condition to the list in the middle does
change those after it).

The files are written to a folder and classified through the same path as ``convnp predict``
(:meth:`convnp.inference.Classifier.classify_files`: read, prepared as MNIST's digits, classified); a file refused
("no ink found") counts as wrong. Also timed: reading and preparing a 12-megapixel JPEG photo on one core.

Writes the table, with the machine, as the "Photographed digits" section of ``benchmarks/RESULTS.md``, and with
``--json`` the counts, which ``--baseline`` shows beside the next run's (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("CONVNP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load import machine, write_section  # noqa: E402 - the same machine line and results file as the others

SECTION = "## Photographed digits"
PAPER = (236, 233, 226)  # white office paper under a warm lamp
INK = (28, 28, 34)  # a black pen
INKS = {"blue": (30, 55, 165), "red": (185, 30, 40), "pencil": (118, 118, 124)}
PAPERS = {"yellow": (242, 226, 140), "blue": (188, 212, 236), "pink": (240, 196, 206), "kraft": (196, 164, 120),
          "grey": (176, 176, 172)}

# name -> (what it is, the photo's settings); every setting not named keeps photograph()'s default.
CONDITIONS = {
    "even": ("even light, PNG (the control)", {}),
    "gradient": ("light falling by 90 grey levels across the page", {"gradient": 90}),
    "noise": ("sensor noise, sd 6 per channel", {"noise": 6}),
    "jpeg": ("JPEG quality 60", {"jpeg": 60}),
    "shadow": ("a soft shadow across one corner", {"shadow": True}),
    "blur": ("out of focus (Gaussian blur, radius 2.5 px)", {"blur": 2.5}),
    "rotation": ("the page turned by up to 10 degrees", {"rotation": 10}),
    "ink": ("blue, red or pencil-grey ink", {"ink": "cycle"}),
    "paper": ("yellow, blue, pink, kraft or grey paper", {"paper": "cycle"}),
    "off-centre": ("a small digit near a corner", {"off_centre": True}),
    "ruled": ("lined paper: pale blue lines 25-40 px apart", {"ruled": True}),
    "grid": ("squared paper: pale blue lines every 20 px both ways", {"grid": True}),
    "page-edge": ("the page's edge in view: a dark table along one side", {"edge": True}),
    "uneven+noise+jpeg": ("gradient, noise and JPEG (the issue's third row)", {"gradient": 90, "noise": 6, "jpeg": 60}),
    "uneven+noise+jpeg+shadow": ("the same with a shadow across a corner",
                                 {"gradient": 90, "noise": 6, "jpeg": 60, "shadow": True}),
    "everything": ("all of the above at once but off-centre and blur",
                   {"gradient": 90, "noise": 6, "jpeg": 60, "shadow": True, "rotation": 10, "ink": "cycle",
                    "paper": "cycle"}),
    "row": ("4-6 digits in a row, some touching, even light (digits right)", {"row": True}),
    "row-photo": ("the same rows with gradient, noise, JPEG and a shadow",
                  {"row": True, "gradient": 90, "noise": 6, "jpeg": 60, "shadow": True}),
    "blank": ("no digit: gradient, noise, JPEG, shadow, coloured paper (right: refused as \"no ink found\")",
              {"gradient": 90, "noise": 6, "jpeg": 60, "shadow": True, "paper": "cycle", "blank": True}),
}


# ---- drawing a photo -------------------------------------------------------------------------------------------------
def ink_coverage(digit: np.ndarray, side: int, angle: float) -> np.ndarray:
    """An MNIST digit ``(28, 28)`` uint8 enlarged to ``(side, side)`` ink coverage in [0, 1], turned by ``angle``."""
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    if angle:
        big = big.rotate(angle, resample=Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float64) / 255.0, 0.0, 1.0)


def lighting(shape: tuple[int, int], rng: np.random.Generator, gradient: float, shadow: bool,
             paper_luma: float) -> np.ndarray:
    """How much light falls on each pixel ``(H, W)``, 1 at the brightest: a linear fall of ``gradient`` grey levels
    (of the paper's ``paper_luma``) across the page in a random direction, and a soft shadow over one corner."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    light = np.ones(shape)
    if gradient:
        theta = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / (t.max() - t.min())  # 0 .. 1 across the page
        light *= 1.0 - gradient / paper_luma * t
    if shadow:
        # A line cutting off one corner: from u*W along the top/bottom edge to v*H along the side edge.
        fy, fx = rng.integers(0, 2, size=2)
        u, v = rng.uniform(0.35, 0.6, size=2)
        dx = (xx if fx == 0 else W - 1 - xx) / (u * W)
        dy = (yy if fy == 0 else H - 1 - yy) / (v * H)
        inside = 1.0 - (dx + dy)  # > 0 inside the corner's triangle
        softness = rng.uniform(0.04, 0.1)
        light *= 1.0 - rng.uniform(0.4, 0.55) / (1.0 + np.exp(-inside / softness))
    return light


def photograph(digit: np.ndarray, rng: np.random.Generator, index: int, *, rotation: float = 0.0,
               off_centre: bool = False, blank: bool = False, size: tuple[int, int] | None = None,
               **develop) -> tuple[Image.Image, str]:
    """Print ``digit`` on paper and photograph it (:func:`develop`); the picture and the file suffix to save it
    with."""
    W, H = size if size else (int(rng.integers(240, 361)), int(rng.integers(240, 361)))
    side = min(W, H)
    box = int(side * (rng.uniform(0.35, 0.5) if off_centre else rng.uniform(0.7, 0.95)))
    if off_centre:  # near a random corner, a few per cent in from the edges
        x0 = int(rng.uniform(0.02, 0.1) * W) if rng.random() < 0.5 else W - box - int(rng.uniform(0.02, 0.1) * W)
        y0 = int(rng.uniform(0.02, 0.1) * H) if rng.random() < 0.5 else H - box - int(rng.uniform(0.02, 0.1) * H)
    else:
        x0 = (W - box) // 2 + int(rng.integers(-W // 20, W // 20 + 1))
        y0 = (H - box) // 2 + int(rng.integers(-H // 20, H // 20 + 1))
    x0, y0 = int(np.clip(x0, 0, W - box)), int(np.clip(y0, 0, H - box))
    cover = np.zeros((H, W))
    cover[y0 : y0 + box, x0 : x0 + box] = ink_coverage(digit, box, rng.uniform(-rotation, rotation))
    cover *= not blank
    return develop_photo(cover, rng, index, **develop)


def photograph_row(digits: np.ndarray, rng: np.random.Generator, index: int, **develop) -> tuple[Image.Image, str]:
    """Print ``digits`` `(k, 28, 28)` side by side, as a number is written (each 28x28 box 0.6-0.85 of its width
    after the last, so neighbours' strokes sometimes touch; each digit a little up or down and turned by up to 5
    degrees), and photograph them."""
    box = int(rng.uniform(90, 130))
    steps = rng.uniform(0.6, 0.85, size=len(digits)) * box
    margin = int(rng.uniform(0.2, 0.5) * box)
    W = int(steps[:-1].sum()) + box + 2 * margin
    H = int(box * rng.uniform(1.3, 1.8))
    cover = np.zeros((H, W))
    x = float(margin)
    for digit, step in zip(digits, steps):
        y0 = int((H - box) / 2 + rng.uniform(-0.06, 0.06) * box)
        x0 = int(x)
        cover[y0 : y0 + box, x0 : x0 + box] = np.maximum(cover[y0 : y0 + box, x0 : x0 + box],
                                                         ink_coverage(digit, box, rng.uniform(-5, 5)))
        x += step
    return develop_photo(cover, rng, index, **develop)


def develop_photo(cover: np.ndarray, rng: np.random.Generator, index: int, *, gradient: float = 0.0,
                  noise: float = 0.0, jpeg: int | None = None, shadow: bool = False, blur: float = 0.0,
                  ink: str | None = None, paper: str | None = None, ruled: bool = False, grid: bool = False,
                  edge: bool = False) -> tuple[Image.Image, str]:
    """Ink ``cover`` `(H, W)` in [0, 1] on paper (plain, lined or squared; its edge in view if asked), lit,
    blurred and noisy as asked: the picture and its suffix."""
    H, W = cover.shape
    ink_rgb = np.array(INKS[list(INKS)[index % len(INKS)]] if ink == "cycle" else INK, float)
    paper_rgb = np.array(PAPERS[list(PAPERS)[index % len(PAPERS)]] if paper == "cycle" else PAPER, float)
    if ink == "cycle" and index % len(INKS) == 2:  # pencil: lighter where the graphite is thin
        cover = cover * rng.uniform(0.6, 1.0, cover.shape) * 0.9
    sheet = np.broadcast_to(paper_rgb, (H, W, 3)).copy()  # the paper, with its printed lines
    line = np.array([150.0, 190.0, 230.0]) / 236.0  # pale blue
    if ruled or grid:
        spacing = 20 if grid else int(rng.integers(25, 41))
        for r in range(int(rng.integers(0, spacing)), H, spacing):
            sheet[r : r + 2] *= line
        for c in range(int(rng.integers(0, spacing)), W, spacing) if grid else ():
            sheet[:, c : c + 2] *= line
    page = sheet * (1 - cover[..., None]) + ink_rgb * cover[..., None]  # (H, W, 3)
    if edge:  # the table beyond the page's edge, along one side
        width = int(rng.uniform(0.06, 0.15) * min(H, W))
        side = int(rng.integers(0, 4))
        region = [np.s_[:, :width], np.s_[:, W - width :], np.s_[:width], np.s_[H - width :]][side]
        page[region] = (70.0, 55.0, 45.0)
    page = page * lighting((H, W), rng, gradient, shadow, float(paper_rgb @ [0.299, 0.587, 0.114]))[..., None]
    img = Image.fromarray(np.clip(np.rint(page), 0, 255).astype(np.uint8))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, noise, (H, W, 3))
        img = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return img, (".jpg" if jpeg else ".png")


def fonts() -> list[Path]:
    """Every TrueType/OpenType font file ``fc-list`` knows (else those under /usr/share/fonts), sorted."""
    try:
        out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, check=True).stdout
        files = {line.split(":")[0].strip() for line in out.splitlines() if line.strip()}
    except (OSError, subprocess.CalledProcessError):
        files = {str(p) for p in Path("/usr/share/fonts").rglob("*")}
    return sorted(Path(f) for f in files if f.lower().endswith((".ttf", ".otf")))


def typed_digit(font: Path, digit: int, side: int = 240) -> Image.Image:
    """``digit`` typed in ``font``, about 60% of the picture's height, dark on white."""
    img = Image.new("RGB", (side, side), (255, 255, 255))
    face = ImageFont.truetype(str(font), size=int(side * 0.6))
    ImageDraw.Draw(img).text((side / 2, side / 2), str(digit), fill=(20, 20, 20), font=face, anchor="mm")
    return img


# ---- the benchmark ---------------------------------------------------------------------------------------------------
def write_condition(folder: Path, name: str, digits: np.ndarray, seed: int) -> list[Path]:
    """Photograph every digit under condition ``name``; the files, in the digits' order."""
    settings = CONDITIONS[name][1]
    index = list(CONDITIONS).index(name)
    paths = []
    for i, digit in enumerate(digits):
        rng = np.random.default_rng([seed, index, i])
        img, suffix = photograph(digit, rng, i, **settings)
        path = folder / f"{name}-{i:05d}{suffix}"
        img.save(path, quality=settings["jpeg"]) if "jpeg" in settings else img.save(path)
        paths.append(path)
    return paths


def write_rows(folder: Path, name: str, x_test: np.ndarray, y_test: np.ndarray, n_rows: int,
               seed: int) -> tuple[list[Path], list[str]]:
    """``n_rows`` photos of 4-6 MNIST test digits in a row (drawn from their own seeded Generators) and the
    numbers written in them."""
    settings = {k: v for k, v in CONDITIONS[name][1].items() if k != "row"}
    index = list(CONDITIONS).index(name)
    paths, numbers = [], []
    for i in range(n_rows):
        rng = np.random.default_rng([seed, index, i])
        chosen = rng.choice(len(x_test), size=int(rng.integers(4, 7)), replace=False)
        img, suffix = photograph_row(x_test[chosen], rng, i, **settings)
        paths.append(folder / f"{name}-{i:05d}{suffix}")
        img.save(paths[-1], quality=settings["jpeg"]) if "jpeg" in settings else img.save(paths[-1])
        numbers.append("".join(str(int(d)) for d in y_test[chosen]))
    return paths, numbers


def score_rows(classifier, paths: list[Path], numbers: list[str]) -> dict:
    """Digits read right (the longest common subsequence of the number read and the number written, so a digit
    missed or split in two costs one, not the rest of the row), of the longer of the two per number; numbers read
    whole; files refused."""
    from convnp.errors import DataError
    from convnp.reading import read_number_file

    right = whole = refused = total = 0
    for path, number in zip(paths, numbers):
        try:
            read = "".join(classifier.class_names[d.label] for d in read_number_file(classifier, path))
        except DataError:
            read = ""
            refused += 1
        right += _common(read, number)
        total += max(len(read), len(number))  # a digit read twice (split) is a wrong digit too
        whole += read == number
    return {"right": right, "total": total, "refused": refused, "whole": whole, "numbers": len(numbers)}


def _common(a: str, b: str) -> int:
    """The length of the longest common subsequence of ``a`` and ``b``."""
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            table[i + 1, j + 1] = table[i, j] + 1 if p == q else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])


def write_typed(folder: Path) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for k, font in enumerate(fonts()):
        for digit in range(10):
            paths.append(folder / f"typed-{k:03d}-{digit}.png")
            typed_digit(font, digit).save(paths[-1])
            labels.append(digit)
    return paths, np.array(labels)


def score(classifier, paths: list[Path], labels: np.ndarray) -> dict:
    """How many files ``classifier`` reads right (a label of -1: a blank page, right when refused), and how many
    it refused."""
    results = classifier.classify_files(paths, k=1, errors="report")
    right = sum((r.error is not None) if y < 0 else (r.error is None and r.label == int(y))
                for r, y in zip(results, labels))
    refused = sum(r.error is not None for r in results)
    return {"right": int(right), "total": len(paths), "refused": int(refused)}


def time_big_photo(folder: Path, rng: np.random.Generator, repeats: int = 5) -> dict:
    """Read and prepare a 4000x3000 JPEG photo of one digit (uneven light, noise, shadow) as ``convnp predict``
    does: the median and best of ``repeats`` runs, in milliseconds, on this process's one core."""
    from convnp.data import load_mnist
    from convnp.data.images import load_digits

    digit = load_mnist()[2][0]
    img, _ = photograph(digit, rng, 0, gradient=90, noise=6, shadow=True, size=(4000, 3000))
    path = folder / "12mp.jpg"
    img.save(path, quality=85)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_digits([path])
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": float(np.median(times)), "best_ms": float(min(times)), "bytes": path.stat().st_size}


def run(checkpoints: list[str], n: int, seed: int, conditions: list[str], keep: Path | None) -> dict:
    from convnp.data import load_mnist
    from convnp.inference import Classifier

    classifiers = {c: Classifier.from_checkpoint(c, threads=1) for c in checkpoints}
    _, _, x_test, y_test = load_mnist()
    chosen = np.random.default_rng(seed).choice(len(x_test), size=n, replace=False)
    digits, labels = x_test[chosen], y_test[chosen]
    scores: dict = {c: {} for c in checkpoints}
    with tempfile.TemporaryDirectory(prefix="convnp-photos-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in conditions:
            settings = CONDITIONS.get(name, ("", {}))[1]
            if settings.get("row"):
                paths, numbers = write_rows(folder, name, x_test, y_test, max(10, n // 3), seed)
            elif name == "typed":
                paths, truth = write_typed(folder)
            else:
                paths, truth = write_condition(folder, name, digits, seed), labels
                truth = np.full(len(paths), -1) if settings.get("blank") else truth
            for c, classifier in classifiers.items():
                scores[c][name] = (score_rows(classifier, paths, numbers) if settings.get("row")
                                   else score(classifier, paths, truth))
                print(f"{name:26s} {Path(c).name:20s} {scores[c][name]}", flush=True)
        timing = time_big_photo(folder, np.random.default_rng([seed, 99]))
    print(f"12-megapixel JPEG read and prepared: median {timing['median_ms']:.0f} ms", flush=True)
    return {"n": n, "seed": seed, "scores": scores, "timing": timing}


def table(result: dict, baseline: dict | None) -> str:
    names = [Path(c).parent.name if Path(c).suffix == ".npz" else Path(c).name for c in result["scores"]]
    head = ["condition"] + (["before"] if baseline else []) + names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = next(iter(result["scores"].values()))
    for cond in first:
        label = CONDITIONS[cond][0] if cond in CONDITIONS else f"typed digits, {first[cond]['total'] // 10} fonts"
        row = [f"{cond}: {label}"]
        if baseline:
            old = next(iter(baseline["scores"].values())).get(cond)
            row.append(_cell(old) if old else "-")
        row += [_cell(s[cond]) for s in result["scores"].values()]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cell(s: dict) -> str:
    refused = f", {s['refused']} refused" if s["refused"] else ""
    whole = f"; {s['whole']}/{s['numbers']} numbers whole" if "whole" in s else ""
    return f"{s['right']}/{s['total']} ({100 * s['right'] / s['total']:.1f}%{refused}{whole})"


def section(result: dict, baseline: dict | None, note: str) -> str:
    command, now = result["command"], result["finished"]
    t = result["timing"]
    before = f"\n\"before\": {note}\n" if baseline else ""
    was = f" (before: median {baseline['timing']['median_ms']:.0f} ms)" if baseline and "timing" in baseline else ""
    return f"""{SECTION}

`{command}`, {now}.
Machine: {machine()}.

{result['n']} MNIST test digits (seed {result['seed']}) printed and photographed under each condition, read through
`Classifier.classify_files` (what `convnp predict` runs); right answers out of the pictures, a refused picture ("no
ink found") counted wrong. Columns: the checkpoints' run folders.
{before}
{table(result, baseline)}

Reading and preparing a 4000x3000 (12-megapixel) JPEG photo ({t['bytes']:,} bytes) on one core: median
{t['median_ms']:.0f} ms, best {t['best_ms']:.0f} ms of 5{was}.
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="digit models (.npz or run folder)")
    p.add_argument("--from-json", type=Path, help="write the section from a --json file of an earlier run (its "
                   "command, time and counts) instead of running")
    p.add_argument("--n", type=int, default=300, help="MNIST test digits per condition")
    p.add_argument("--seed", type=int, default=0, help="chooses the digits and draws every photo")
    p.add_argument("--conditions", nargs="+", default=[*CONDITIONS, "typed"], choices=[*CONDITIONS, "typed"],
                   help="conditions to run")
    p.add_argument("--keep", type=Path, help="write the pictures here (kept) instead of a temporary folder")
    p.add_argument("--json", type=Path, help="also write the counts here")
    p.add_argument("--baseline", type=Path, help="a --json file of an earlier run, shown as the 'before' column")
    p.add_argument("--baseline-note", default="the same benchmark on the code before this change",
                   help="what the 'before' column is")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to update")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    if not args.checkpoints and not args.from_json:
        p.error("give at least one CHECKPOINT, or --from-json")
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        result = run(args.checkpoints, args.n, args.seed, args.conditions, args.keep)
        result["command"] = "python benchmarks/photo_digits.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        result["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    text = section(result, baseline, args.baseline_note)
    print(text)
    if not args.no_write:
        write_section(args.results, text, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
