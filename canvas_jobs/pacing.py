"""Pacing at Canvas's rate limit (app/middleware/request_throttle.rb)."""

from __future__ import annotations

import threading
import time


class Pacer:
    """How many requests may be in flight: as many as Canvas's rate limiter allows.

    Canvas reserves 50 units of its bucket (600) for every request in flight
    and refuses one that would reach the mark, so the room left in
    X-Rate-Limit-Remaining says how many more it will take. Additive increase
    while there is room for several more; multiplicative decrease, at once, when
    it runs low or a request is throttled; never past the cap (--workers).
    """

    ROOM = 150.0  # three more reservations fit: grow
    LOW = 100.0  # fewer than two fit: shrink before Canvas refuses
    RESERVED, OUTFLOW = 50.0, 10.0  # Canvas's defaults: reserved per request, leaked per second

    def __init__(self, cap: int):
        self.cap, self.limit, self.in_flight = cap, min(2.0, cap), 0
        self.slow_start = True  # double per round trip until Canvas first pushes back
        self.calm = 0  # answers to wait after a decrease before the next one
        self.not_before = 0.0  # when the bucket itself is near full: wait for its outflow
        self.lock = threading.Lock()

    def acquire(self) -> None:
        # polled: a Condition.wait interrupted by Ctrl-C can leave its lock broken
        while True:
            with self.lock:
                if self.in_flight < int(self.limit) and time.monotonic() >= self.not_before:
                    self.in_flight += 1
                    return
            time.sleep(0.002)

    def wait_for_room(self, at_least: float) -> None:
        """A throttled request's turn: when the bucket has room again, and not before at_least seconds."""
        with self.lock:
            until = max(self.not_before, time.monotonic() + at_least)
        time.sleep(max(0.0, until - time.monotonic()))

    def release(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def observe(self, remaining: float | None, throttled: bool) -> None:
        """Called by the Canvas client for every answer."""
        with self.lock:
            self.calm = max(0, self.calm - 1)
            if remaining is not None:
                # the room left once the other requests in flight give back their reservations
                room = remaining + self.RESERVED * max(0, self.in_flight - 1)
                if room < self.LOW:  # concurrency is not the limit now, the outflow is
                    self.not_before = max(self.not_before,
                                          time.monotonic() + (self.LOW - room) / self.OUTFLOW)
            if throttled or (remaining is not None and remaining < self.LOW):
                if not self.calm:
                    self.limit = max(1.0, self.limit * (0.5 if throttled else 0.8))
                    self.slow_start, self.calm = False, max(1, self.in_flight)
            elif remaining is None or remaining >= self.ROOM:
                step = 1.0 if self.slow_start else 1.0 / self.limit
                self.limit = min(float(self.cap), self.limit + step)
