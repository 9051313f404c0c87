"""The benchmarks' one result contract, shared by every script in bench/ and bench/all.py.

Every benchmark writes bench/results/<name>-s<scale>.json (its own figures, in its own
shape, plus a `summary` list) and a .md beside it. A summary row is

    {task, reference, reference_seconds, ours_seconds, ratio, target, met, peak_rss_mb}

`reference` names the tool ours is measured against (null when the target is absolute,
e.g. "< 5 ms"); `ratio` is ours_seconds / reference_seconds; `met` is true, false or null
(no target). A row may carry `ours` (text) when the figure is not a time (requests/s,
RSS growth). The results folder is $STRONGROOM_BENCH_RESULTS when set (bench/all.py
--results-dir sets it for its children), else bench/results.
"""
from __future__ import annotations

import json
import os
import tempfile
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    path = Path(os.environ.get("STRONGROOM_BENCH_RESULTS") or DEFAULT_RESULTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


def scale_tag(scale: float) -> str:
    """1.0 -> "1", 0.1 -> "0_1": the <scale> of <name>-s<scale>.json."""
    return f"{scale:g}".replace(".", "_")


def result_path(name: str, scale: float) -> Path:
    return results_dir() / f"{name}-s{scale_tag(scale)}.json"


def ratio_shown(ratio: float, places: int = 3) -> float:
    """A ratio (ours over the reference: lower is better) to `places` decimals (three in
    the rows, two in the tables), rounded up:
    a run a hair over its target (2.0004x against "at most 2x") must not read 2.000x
    beside "miss". Rounded as the decimal the float prints as, so 1.1 stays 1.1 (1.1 *
    1000 is 1100.0000000000002 in binary)."""
    return float(Decimal(repr(ratio)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING))


def row(task: str, ours_seconds: float | None, *, reference: str | None = None,
        reference_seconds: float | None = None, target: str | None = None, met: bool | None = None,
        peak_rss_mb: float | None = None, ours: str | None = None) -> dict:
    ratio = None
    if ours_seconds is not None and reference_seconds:
        ratio = ratio_shown(ours_seconds / reference_seconds)
    out = {"task": task, "reference": reference,
           "reference_seconds": None if reference_seconds is None else round(reference_seconds, 6),
           "ours_seconds": None if ours_seconds is None else round(ours_seconds, 6),
           "ratio": ratio, "target": target, "met": None if met is None else bool(met),
           "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1)}
    if ours is not None:
        out["ours"] = ours
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary name in the same folder, fsync, rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _cell(value, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def verdict(met: bool | None) -> str:
    return {True: "pass", False: "miss", None: "-"}[met]


def summary_table(rows: list[dict], *, with_benchmark: bool = False) -> list[str]:
    """The markdown table of summary rows (with a benchmark column for latest.md)."""
    head = ["task", "reference tool", "reference", "ours", "ratio", "target", "result", "peak RSS MB"]
    if with_benchmark:
        head = ["benchmark"] + head
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        ours = r.get("ours") or seconds_text(r["ours_seconds"])
        cells = [r["task"], r["reference"] or "-", seconds_text(r["reference_seconds"]), ours,
                 _cell(None if r["ratio"] is None else ratio_shown(r["ratio"], 2), "{:.2f}x"),
                 r["target"] or "-", verdict(r["met"]),
                 _cell(r["peak_rss_mb"], "{:.0f}")]
        if with_benchmark:
            cells = [r.get("benchmark", "")] + cells
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return lines


def write_result(name: str, scale: float, body: dict, summary: list[dict],
                 md_lines: list[str] | None = None) -> Path:
    """Write <name>-s<scale>.json (body plus `summary`) and .md (md_lines, else a heading
    and the summary table), each atomically. Returns the json path."""
    path = result_path(name, scale)
    write_atomic(path, json.dumps({**body, "summary": summary}, indent=2) + "\n")
    if md_lines is None:
        md_lines = [f"# bench/{name}.py at scale {scale:g}", ""] + summary_table(summary)
    write_atomic(path.with_suffix(".md"), "\n".join(md_lines) + "\n")
    return path
