#!/usr/bin/env python
"""Hand-run benchmark: an MMFA training run on synthetic heads, against exact ground truth
(issue: learning on this machine). Not part of the test suite.

    python benchmarks/mmfa_heads.py --data DIR --run RUN [--every N] [--pairs N]
        [--yaw 15] [--json FILE] [--no-zero-shot]

``DIR`` is a ``reanimate make-heads DIR --pairs N`` set (the run trained on its
``train/`` videos; the pairs' identities are held out). ``RUN`` is a ``reanimate train
--config mmfa/heads-64`` run folder. In one run, on the same pairs and CPU:

1. **The loss curve**: the run's ``log.jsonl``, the mean of each loss over windows of
   steps.
2. **Accuracy against the ground truth** (``benchmarks/heads_gt.py``'s measures) for every
   N-th checkpoint of the run and its latest, for the zero-shot default (no weights), and
   the baselines: ``still`` (the source, unmoved), ``driver``, ``target`` (the floor).
   Printed ratios: the head-region L1 over the still source's, and the head-pose error
   (geodesic angle to the true pose) over the still source's. The targets of the issue:
   both at most 0.5.
3. **Yaw edits**: ``reanimate edit SOURCE --yaw +-D`` on each pair's source (a neutral
   held-out identity); the yaw the face mesh reads on the output minus the source's
   (frames enlarged to 256 px for the face mesh). The target: ``D +- 5`` degrees.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heads_gt  # noqa: E402
from _machine import cpu_model  # noqa: E402

from reanimate.errors import ReanimateError  # noqa: E402
from reanimate.training.checkpoints import checkpoint_dir  # noqa: E402

MEASURE_SIDE = 256


def loss_curve(run: Path, windows: int = 8) -> list[dict]:
    """Mean of each logged loss over ``windows`` equal spans of the logged steps."""
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    if not lines:
        return []
    spans = np.array_split(np.arange(len(lines)), min(windows, len(lines)))
    curve = []
    for span in spans:
        entries = [lines[i] for i in span]
        keys = entries[0]["losses"].keys()
        row = {"steps": f"{entries[0]['step']}-{entries[-1]['step']}"}
        row.update({k: float(np.mean([e["losses"][k] for e in entries])) for k in keys})
        curve.append(row)
    return curve


def checkpoints(run: Path, every: int) -> list[Path]:
    """Every ``every``-th checkpoint of the run (by step) and the last one."""
    found = sorted(checkpoint_dir(run).glob("step-*"))
    found = [p for p in found if (p / "model.safetensors").is_file()]
    chosen = found[every - 1 :: every] if every else []
    if found and found[-1] not in chosen:
        chosen.append(found[-1])
    return chosen


def measured_yaw(path: Path, mesh) -> float:
    from reanimate.faces import head_pose

    image = Image.open(path).convert("RGB")
    scale = MEASURE_SIDE / max(image.size)
    if scale > 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    faces = mesh.detect(np.asarray(image))
    return head_pose(faces[0].landmarks).yaw if faces else float("nan")


def yaw_edits(folders: list[Path], options: dict, degrees: float, workdir: Path, mesh) -> dict:
    """Edit each pair's source by +-``degrees`` of yaw; the measured changes."""
    from reanimate.pipelines.edit import edit

    changes = {+1: [], -1: []}
    for folder in folders:
        source = folder / "source.png"
        before = measured_yaw(source, mesh)
        for sign in changes:
            out = workdir / f"{folder.name}_{'p' if sign > 0 else 'm'}.png"
            edit(source, out, progress=False, yaw=sign * degrees, **options)
            changes[sign].append(measured_yaw(out, mesh) - before)
    result = {}
    for sign, values in changes.items():
        values = np.asarray(values, dtype=float)
        ok = np.isfinite(values)
        result["+" if sign > 0 else "-"] = {
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values)),
            "within_5": float(np.mean(np.abs(np.abs(values[ok]) - degrees) <= 5)) if ok.any() else float("nan"),
            "signed_right": float(np.mean(np.sign(values[ok]) == sign)) if ok.any() else float("nan"),
            "measured": int(ok.sum()),
        }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a `reanimate make-heads --pairs N` folder")
    parser.add_argument("--run", required=True, type=Path, help="an MMFA training run folder")
    parser.add_argument(
        "--every", type=int, default=0, help="also measure every N-th checkpoint (default: only the last)"
    )
    parser.add_argument("--pairs", type=int, help="only the first N pairs")
    parser.add_argument("--yaw", type=float, default=15.0, help="yaw edit in degrees (default 15)")
    parser.add_argument("--json", type=Path, help="write everything to this JSON file")
    parser.add_argument("--no-zero-shot", action="store_true", help="skip the zero-shot default's rows")
    parser.add_argument("--no-checkpoints", action="store_true", help="only the zero-shot default and the baselines")
    args = parser.parse_args(argv)
    from reanimate.faces import FaceMesh

    try:
        folders = heads_gt.pair_folders(args.data, args.pairs)
    except ReanimateError as exc:
        print(f"mmfa_heads.py: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    report = {"cpu": cpu_model(), "data": str(args.data), "run": str(args.run), "pairs": len(folders)}
    report["curve"] = curve = loss_curve(args.run)
    if curve:
        keys = [k for k in curve[0] if k != "steps"]
        print("loss curve (window means):")
        print("  ".join(["steps".rjust(11), *(k[:12].rjust(12) for k in keys)]))
        for row in curve:
            print("  ".join([row["steps"].rjust(11), *(f"{row[k]:12.4f}" for k in keys)]))

    chosen = [] if args.no_checkpoints else checkpoints(args.run, args.every)
    models = [(f"mmfa {p.name}", {"checkpoint": str(p / "model.safetensors")}) for p in chosen]
    if not args.no_zero_shot:
        models.append(("zero-shot (landmarks)", {}))
    with tempfile.TemporaryDirectory(prefix="mmfa_heads_") as tmp:
        tmp = Path(tmp)
        baselines = heads_gt.summarise(heads_gt.evaluate_pairs(folders, (*heads_gt.BASELINES, heads_gt.FLOOR), [], tmp))
        rows = {}
        with FaceMesh(video=False) as mesh:
            for name, options in models:
                cli = [f"--{k}" if v is True else f"--{k}={v}" for k, v in options.items()]
                work = tmp / name.replace(" ", "_")
                work.mkdir()
                result = heads_gt.evaluate_pairs(folders, ("animate",), cli, work, progress=False)
                rows[name] = heads_gt.summarise(result)["animate"]
                rows[name]["yaw_edits"] = yaw_edits(folders, options, args.yaw, work, mesh)
                print(f"measured {name}", file=sys.stderr)
    report["rows"], report["baselines"] = rows, baselines
    still = baselines["still"]
    print(f"\n{len(folders)} held-out pairs from {args.data}; CPU: {report['cpu']}")
    header = (
        "model",
        "L1 head",
        "/still",
        "PSNR head",
        "geo",
        "/still",
        "motion",
        "mouth",
        f"yaw+{args.yaw:g}",
        f"yaw-{args.yaw:g}",
    )
    print("  ".join(f"{h:>12}" for h in header))
    for name, row in {**rows, **{k: v for k, v in baselines.items()}}.items():
        edits = row.get("yaw_edits")
        cells = [
            name[:24],
            f"{row['l1_mask']:.2f}",
            f"{row['l1_mask'] / still['l1_mask']:.2f}",
            f"{row['psnr_mask']:.2f}",
            f"{row['geodesic']:.2f}",
            f"{row['geodesic'] / still['geodesic']:.2f}",
            f"{row['motion']:.2f}",
            f"{row['mouth']:.3f}",
            f"{edits['+']['mean']:+.1f}±{edits['+']['std']:.1f}" if edits else "-",
            f"{edits['-']['mean']:+.1f}±{edits['-']['std']:.1f}" if edits else "-",
        ]
        print("  ".join(f"{c:>12}" for c in cells))
    report["seconds"] = time.perf_counter() - started
    print(f"whole run {report['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=heads_gt._json_default) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
