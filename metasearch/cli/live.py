"""The live view of a running search: a rich panel on a terminal, plain log lines otherwise, nothing when quiet."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class LiveView:
    """Search observer. Use as a context manager around `Search.run()`; pass the instance as `observer`."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False, plain: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console)
        self.task_id = self.progress.add_task("starting", total=None)
        self.best: dict[str, Any] | None = None
        self.counts: dict[str, int] = {}
        self.spent: dict[str, Any] = {}
        self.tasks_done = 0
        self.started = time.monotonic()
        self.phase = "starting"
        self._live: Live | None = None

    def __enter__(self) -> "LiveView":
        if not self.quiet and not self.plain:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def _log(self, text: str) -> None:
        if not self.quiet and self.plain:
            print(f"[metasearch] {text}", file=sys.stderr, flush=True)

    def _render(self) -> Group:
        minutes = max((time.monotonic() - self.started) / 60.0, 1e-9)
        table = Table.grid(padding=(0, 2))
        best = "-" if not self.best else (f"{self.best['score']:.3f} [{self.best['ci_low']:.3f}, "
                                          f"{self.best['ci_high']:.3f}] {self.best['name']}")
        tokens = int(self.spent.get("prompt_tokens", 0) + self.spent.get("completion_tokens", 0))
        cost = float(self.spent.get("cost", 0.0))
        table.add_row("best (val)", best)
        table.add_row("spent", f"{tokens:,} tokens  ${cost:.4f}  ({tokens / minutes:,.0f} tok/min, "
                               f"${cost / minutes:.4f}/min)")
        table.add_row("candidates", "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "-")
        table.add_row("tasks run", f"{self.tasks_done:,}")
        return Group(self.progress, table)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if self.quiet:
            return
        if kind == "phase":
            self.phase = data["phase"]
            self.progress.update(self.task_id, description=self.phase, total=data.get("total"),
                                 completed=data.get("done", 0))
            self._log(f"phase {self.phase} ({data.get('total')} steps)")
        elif kind == "task_done":
            self.tasks_done += 1
        elif kind == "candidate_done":
            if data.get("status"):
                self.counts[data["status"]] = self.counts.get(data["status"], 0) + 1
            if self.phase == "seeds":
                self.progress.advance(self.task_id)
            self._log(f"candidate {data['id']} {data['name']!r} {data['split']}: {data['score']:.3f} "
                      f"[{data['ci'][0]:.3f}, {data['ci'][1]:.3f}] {data.get('status') or ''}")
        elif kind == "iteration_done":
            self.progress.update(self.task_id, completed=data["iteration"])
            self.spent = data.get("spent", self.spent)
            best = data.get("best")
            for c in data.get("candidates", []):
                if c["status"] not in ("evaluated", "stopped_early"):
                    self.counts[c["status"]] = self.counts.get(c["status"], 0) + 1
            self._log(f"iteration {data['iteration']}/{data['total']} best {best if best is None else round(best, 3)}")
        elif kind == "best":
            self.best = data
        elif kind == "summary":
            self.spent = data.get("spent", self.spent)
        self._refresh()
