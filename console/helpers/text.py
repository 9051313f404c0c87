"""How times, ages and durations read in the console (short, fixed width where it helps)."""
from __future__ import annotations

from datetime import datetime


def age(seconds: float | None) -> str:
    """`3d 4h`, `12m 5s`; `never` for None."""
    if seconds is None:
        return "never"
    seconds = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // sub_size}{sub}"
    return f"{seconds}s"


def when(iso: str | None) -> str:
    """An ISO timestamp as `2026-11-23 01:57:35` (UTC, as the daemon stores it)."""
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f}s" if seconds < 60 else age(seconds)


def size(count: int | float | None) -> str:
    """Bytes in binary units, as the CLI and the logs give them: `804 MiB`, `4.2 GiB`;
    `—` for None. One unit system across every tab (it was MB here and MiB on Backups)."""
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def counted(done: int | None, total: int | None, unit: str | None) -> str:
    """A run's progress with the unit its kind counts in: `12,400 / 100,000 rows`,
    `1.2 / 3.4 GiB` (bytes both in the total's binary unit), `840 rows` while the total
    is not known, `—` before anything was counted."""
    if unit == "bytes":
        if not total:
            return size(done) if done else "—"
        scale, name = 1, "B"
        for name in ("B", "KiB", "MiB", "GiB", "TiB"):
            if total / scale < 1024 or name == "TiB":
                break
            scale *= 1024
        digits = 0 if name == "B" or total / scale >= 100 else 1
        return f"{(done or 0) / scale:.{digits}f} / {total / scale:.{digits}f} {name}"
    suffix = f" {unit}" if unit else ""
    if not total:
        return f"{done:,}{suffix}" if done else "—"
    return f"{done or 0:,} / {total:,}{suffix}"


def fit(text: str, width: int | None) -> str:
    """`text` cut to `width` cells with an ellipsis, so a cut value says it was cut."""
    if width is None or len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + "…"
