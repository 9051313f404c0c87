"""A text gauge for a 0-100 score: a bar of block characters and the number."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain


def gauge_text(score: int | None, width: int = 20) -> str:
    if score is None:
        return "not reported"
    score = max(0, min(100, int(score)))
    filled = round(width * score / 100)
    return f"{'█' * filled}{'░' * (width - filled)} {score}/100"


class ScoreGauge(Plain):
    """Shows a score; the colour class says pass (>= threshold), warn or fail."""

    def __init__(self, *, threshold: int = 80, id: str | None = None) -> None:
        super().__init__(gauge_text(None), id=id, classes="gauge")
        self.threshold = threshold
        self.score: int | None = None

    def show(self, score: int | None) -> None:
        self.score = score
        self.update(gauge_text(score))
        self.set_class(score is not None and score >= self.threshold, "-ok")
        self.set_class(score is not None and self.threshold > score >= self.threshold - 20, "-warn")
        self.set_class(score is not None and score < self.threshold - 20, "-bad")
