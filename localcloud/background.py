"""A task that runs every few seconds in a background thread, until stopped: the local cloud's
clocks (schedules, alarm evaluation) and pollers (SQS event sources) are all one of these."""

from __future__ import annotations

import logging
import threading
from typing import Self

LOG = logging.getLogger(__name__)


class Periodic:
    """Calls `tick()` every `interval` seconds on its own thread. A tick that returns True had
    work to do, and the next one follows at once (a poller draining a queue); an exception is
    logged by type and the clock keeps going, as AWS's own pollers and clocks do."""

    name = "localcloud-periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def tick(self) -> bool | None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = bool(self.tick())
            except Exception as exc:  # a background task must outlive any one failure
                LOG.warning("%s: tick failed (%s)", self.name, type(exc).__name__)
            if not busy:
                self._stop.wait(self.interval)
