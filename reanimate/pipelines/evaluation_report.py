"""Evaluation results and their reports: the table columns, ``metrics.json``,
``per_video.csv``, ``summary.csv``, ``report.md`` and the comparison of runs."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import write_text_atomic

#: Report columns: (key, heading, format). Lower is better except where noted in the docs.
COLUMNS = (
    ("l1", "L1", "{:.4f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("ms_ssim", "MS-SSIM", "{:.4f}"),
    ("lpips", "LPIPS", "{:.4f}"),
    ("akd", "AKD (px)", "{:.3f}"),
    ("akd68", "AKD-68 (px)", "{:.3f}"),
    ("mkr", "MKR", "{:.4f}"),
    ("aed", "AED", "{:.4f}"),
    ("csim", "CSIM", "{:.4f}"),
    ("apd", "APD (deg)", "{:.3f}"),
    ("jitter", "jitter (px/f²)", "{:.3f}"),
    ("jitter_real", "jitter real", "{:.3f}"),
    ("fid", "FID", "{:.2f}"),
)


@dataclass
class EvaluationResult:
    """One run: ``metrics`` (means over videos; None where a metric does not apply,
    ``"n/a (weights missing)"`` where it needs weights that were not given),
    ``per_video`` (one dict per video) and ``notes``."""

    name: str
    protocol: str
    kind: str
    metrics: dict[str, float | str | None]
    per_video: list[dict]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "kind": self.kind,
            "metrics": self.metrics,
            "per_video": self.per_video,
            "notes": self.notes,
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvaluationResult:
        path = Path(path)
        if path.is_dir():
            path = path / "metrics.json"
        try:
            data = json.loads(path.read_text())
            return cls(
                data["name"], data["protocol"], data["kind"], data["metrics"], data["per_video"], data.get("notes", [])
            )
        except FileNotFoundError:
            raise InputError(path, "no evaluation results here (metrics.json of reanimate evaluate)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(path, f"not an evaluation result ({exc})") from None


def format_value(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return fmt.format(value)


def markdown_table(results: list[EvaluationResult]) -> str:
    """Rows = runs, columns = the metrics any of them has (the papers' table format)."""
    columns = [(k, h, f) for k, h, f in COLUMNS if any(r.metrics.get(k) is not None for r in results)]
    lines = [
        "| run | protocol | videos | " + " | ".join(h for _, h, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for r in results:
        cells = [format_value(r.metrics.get(k), f) for k, _, f in columns]
        lines.append(f"| {r.name} | {r.protocol} | {r.metrics.get('videos', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(result: EvaluationResult, out: Path) -> None:
    """``metrics.json``, ``per_video.csv`` and ``report.md``, each written atomically."""
    write_text_atomic(out / "metrics.json", json.dumps(result.as_dict(), indent=1, default=_json_default))
    keys = ["name", "source", "driving", "frames"] + [k for k, _, _ in COLUMNS if k != "fid"]
    write_text_atomic(out / "per_video.csv", _csv_text([keys] + [[v.get(k) for k in keys] for v in result.per_video]))
    summary_keys = ["videos", "frames"] + [k for k, _, _ in COLUMNS]
    write_text_atomic(
        out / "summary.csv",
        _csv_text(
            [
                ["run", "protocol"] + summary_keys,
                [result.name, result.protocol] + [result.metrics.get(k) for k in summary_keys],
            ]
        ),
    )
    report = [f"# {result.name}: {result.protocol} ({result.kind})", "", markdown_table([result]), ""]
    if result.notes:
        report += ["Notes:", ""] + [f"- {n}" for n in result.notes] + [""]
    worst = sorted((v for v in result.per_video if v.get("akd") is not None), key=lambda v: -v["akd"])[:5]
    if worst:
        report += ["Videos with the largest AKD:", ""] + [f"- {v['name']}: {v['akd']:.3f} px" for v in worst]
    write_text_atomic(out / "report.md", "\n".join(report) + "\n")


def compare(paths: list[str | os.PathLike]) -> str:
    """A Markdown table of several runs (their folders or ``metrics.json`` files)."""
    return markdown_table([EvaluationResult.load(p) for p in paths])


def _csv_text(rows: list[list]) -> str:
    """CSV of ``rows`` (quoted where needed): None as an empty cell, floats to 6 digits."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))
