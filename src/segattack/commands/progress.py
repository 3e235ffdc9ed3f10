"""Progress of an experiment that can be followed on a terminal and in a log file.

``RunProgress`` takes the place of ``ProgressBar`` (same constructor and calls). It shows the images done (resumed
ones included), the time elapsed, the time left, and the running mean share of class pixels hidden and of
background kept at the budget nearest 10 levels (first attack, perturbation on the whole image; the pixel accuracy
under attack for the untargeted goal), as ``segattack.experiment`` reports them in its ``Progress``:

- on a terminal, a tqdm bar with those numbers after it;
- anywhere else (a log file, a pipe, a batch job), one plain line for the first image, then one every ``interval``
  seconds (10 by default) and one for the last image, e.g.
  ``images 12/500 (2.4%), 0:03:10 elapsed, ETA 2:10:00; eps 10: 87.1% hidden, 98.2% kept``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..experiment import Progress

__all__ = ["RunProgress", "DEFAULT_INTERVAL", "clock_time"]

log = logging.getLogger("segattack.cli")

#: Seconds between two plain progress lines when the output is not a terminal.
DEFAULT_INTERVAL = 10.0


def clock_time(seconds: float) -> str:
    """``190`` -> ``"0:03:10"`` (hours:minutes:seconds, as tqdm's ETA but always with hours)."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunProgress:
    """Progress of ``run_experiment`` (its ``progress=`` callback) on ``stream`` (standard error by default).

    ``desc`` names the bar; ``header`` is printed once when the run starts (its configuration accepted). On a
    terminal (``stream.isatty()``, or ``tty=True``) a tqdm bar; otherwise plain lines, the first image's, then at
    most one per ``interval`` seconds, the last image's, and on ``close`` the latest state if it was not printed
    (a run stopped early). ``clock`` (seconds, monotonic) is there for tests.
    """

    def __init__(
        self,
        desc: str,
        header: str = "",
        *,
        stream: IO[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
        self.desc = desc
        self.header = header
        self.stream = stream
        self.interval = float(interval)
        self.clock = clock
        self.tty = tty
        self.bar: Any = None
        self.started: float | None = None
        self.last: Progress | None = None
        self.printed: float | None = None  # clock time of the last plain line
        self.pending = False  # the latest state is not printed yet
        self.skipped: dict[str, int] = {}

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty()) if callable(isatty) else False

    def _print(self, text: str) -> None:
        print(text, file=self._out(), flush=True)

    def __call__(self, p: Progress) -> None:
        if self.started is None:  # the start: the configuration has been accepted
            self.started = self.clock()
            self.last = p
            if self.header:
                self._print(self.header)
            if p.resumed:
                self._print(f"resuming: {p.resumed} of {p.total} images already done")
            if self._is_tty():
                from tqdm import tqdm

                self.bar = tqdm(total=p.total, initial=p.done, desc=self.desc, unit="img", file=self._out(),
                                dynamic_ncols=True)  # fmt: skip
            return
        first = self.last is None or self.last.done == self.last.resumed
        self.last = p
        if p.status and p.status != "ok":
            self.skipped[p.status] = self.skipped.get(p.status, 0) + 1
        log.info("image %d/%d %s: %s", p.done, p.total, p.image_id, p.status)
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix(p), refresh=False)
            self.bar.update(p.done - self.bar.n)
            return
        now = self.clock()
        if first or p.done >= p.total or self.printed is None or now - self.printed >= self.interval:
            self._print(self.line(p, now))
            self.printed = now
            self.pending = False
        else:
            self.pending = True

    def postfix(self, p: Progress) -> str:
        """``eps 10: 87.1% hidden, 98.2% kept`` (or ``eps 8: 12.3% accuracy``), then the images skipped."""
        parts = []
        if p.means and p.eps is not None:
            shown = []
            if "fooled" in p.means:
                shown.append(f"{100 * p.means['fooled']:.1f}% hidden")
            if "preserved" in p.means:
                shown.append(f"{100 * p.means['preserved']:.1f}% kept")
            if "accuracy" in p.means:
                shown.append(f"{100 * p.means['accuracy']:.1f}% accuracy")
            parts.append(f"eps {p.eps:g}: " + ", ".join(shown))
        if self.skipped:
            parts.append(", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.skipped.items()))
        return "; ".join(parts)

    def line(self, p: Progress, now: float) -> str:
        """``images 12/500 (2.4%), 0:03:10 elapsed, ETA 2:10:00; eps 10: 87.1% hidden, 98.2% kept``: the ETA from
        the images done since the start (resumed ones took no time)."""
        elapsed = now - (self.started if self.started is not None else now)
        new = p.done - p.resumed
        eta = clock_time((p.total - p.done) * elapsed / new) if new > 0 else "?"
        share = 100 * p.done / p.total if p.total else 100.0
        text = f"images {p.done}/{p.total} ({share:.1f}%), {clock_time(elapsed)} elapsed, ETA {eta}"
        extra = self.postfix(p)
        return f"{text}; {extra}" if extra else text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.pending and self.last is not None:
            self._print(self.line(self.last, self.clock()))
            self.pending = False
