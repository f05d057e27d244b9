"""When the whole run fails, stop the run: the stop policy of batches and undo.

A rejected token, a Canvas that is down or unreachable, or throttling that
never lets up is no row's fault: failing row after row only hammers Canvas and
buries the one message that matters. The Guard is told of every attempt the
Canvas client makes (canvas_common.Canvas._send) and decides when the run must
stop; from then on every attempt, in any worker, raises RunStopped before it is
sent, so the requests after a fault stay bounded. The runner turns RunStopped
into one line and EXIT_STOPPED, as it turns Ctrl-C into 130.
"""

from __future__ import annotations

import random
import threading
import time

import requests

import canvas_common as cc
import canvas_errors
import canvas_http

from .pacing import Pacer

# sysexits.h's EX_TEMPFAIL: the run stopped whole; the same command again finishes the job
EXIT_STOPPED = 75


# the change guard (--max-changes) stopped the run before it made more changes than allowed
EXIT_CHANGE_LIMIT = 3


class RunStopped(Exception):
    """The whole run must stop (no new requests); str() is what happened.

    unclear: the write being made when it stopped may have reached Canvas (a 5xx or a
    lost connection was what stopped it, or came before); False when that write was
    never sent or Canvas refused it (a rejected token, throttling): not done."""

    def __init__(self, reason: str, unclear: bool = False):
        super().__init__(reason)
        self.unclear = unclear


class TooManyChanges(Exception):
    """--max-changes would be passed: no more writes; str() says how many, then what to do."""

    then = ("check what it would change (--dry-run counts the changes), then run the same command "
            "with a higher --max-changes to go on")


def check_change_limit(limit: int | None, started: int, planned: int):
    """Like change_threshold of Canvas's SIS imports: refuse writes that would pass the limit.

    limit: --max-changes (None: no limit); started: writes this run already made;
    planned: the next block's writes (up to 1000 rows), all refused together if
    they would pass it, so a file of up to 1000 rows is stopped before any change.
    Raises TooManyChanges.
    """
    if limit is not None and started + planned > limit:
        raise TooManyChanges(
            f"{started + planned} changes planned so far, more than --max-changes {limit} allows"
            + (f" ({started} made before this point)" if started else " (none made)"))


def unavailable(exc: cc.CanvasError) -> bool:
    """Canvas down or out of reach (5xx, proxy, timeout, refused, broken): no row's fault."""
    return isinstance(exc, (cc.CanvasServerError, cc.CanvasUnreachable)) and not exc.final


class Guard:
    """Counts the answers that say the run, not a row, is failing.

    - 401 that is not about a token's scopes (CanvasAuthError): stop at once.
    - Canvas unavailable (5xx, proxy errors, timeouts, refused or broken
      connections): stop after UNAVAILABLE_IN_A_ROW such attempts with no
      answer from Canvas in between; or after WRITES_UNAVAILABLE_IN_A_ROW writes
      (POST, PUT, DELETE) in a row found it so, whatever the reads between them
      found (a write-only outage: the look-again reads after a failed write
      succeed and must not keep the run writing). A certificate or a host name that does not
      resolve (CanvasUnreachable.final) stops at once.
    - Something else answering in Canvas's place (canvas_errors.CanvasForeignAnswer: a
      sign-in page, a proxy's block page, a body that is not JSON): stop after
      FOREIGN_IN_A_ROW such answers with no answer from Canvas in between, or after
      FOREIGN_WRITES_IN_A_ROW writes in a row got one whatever the reads between found
      (a proxy that passes reads and answers writes itself). The stop names what answered.
    - Throttled (429, 403 Rate Limit Exceeded): back-pressure, never a failure;
      the request waits its turn in the pacer and is sent again. Only when
      Canvas refuses for THROTTLED_FOR seconds on end while the pacer is down
      to one request in flight does the run stop.
    """

    UNAVAILABLE_IN_A_ROW = 10
    WRITES_UNAVAILABLE_IN_A_ROW = 5
    FOREIGN_IN_A_ROW = 3
    FOREIGN_WRITES_IN_A_ROW = 3
    THROTTLED_FOR = 180.0  # seconds of refusals with one request in flight
    MAX_WAIT = 10.0  # longest wait before a throttled request is sent again

    def __init__(self, pacer: Pacer):
        self.pacer = pacer
        self.lock = threading.Lock()
        self.reason: str | None = None
        self.stopped_at: float | None = None  # time.monotonic() of the stop (bench/)
        self.unavailable = 0  # attempts in a row that found Canvas unavailable
        self.writes_unavailable = 0  # writes in a row that found it so (reads between do not count)
        self.last_failure = ""
        self.foreign = 0  # answers in a row that were not Canvas's
        self.foreign_writes = 0  # writes in a row that got such an answer (reads between do not count)
        self.throttled_since: float | None = None

    def before(self):
        """Before each attempt: RunStopped once the run must stop."""
        if self.reason:
            raise RunStopped(self.reason)

    def failed(self, error: cc.CanvasError, method: str = "GET"):
        """An attempt that got no answer (timeout, refused, broken, TLS, DNS)."""
        if getattr(error, "final", False):
            self.stop(str(error))
        if isinstance(error, canvas_errors.CanvasForeignAnswer):
            self.count_foreign(error, method != "GET")
        self.count_unavailable(str(error), method != "GET")

    def answered(self, resp: requests.Response, tries: int) -> bool:
        """An answer; True when it was throttled and the request should be sent again."""
        if resp.status_code == 401:
            error = canvas_errors.error_for(resp, "")
            if isinstance(error, cc.CanvasAuthError):  # not a missing scope: every request fails
                self.stop(str(error))
        if canvas_errors.is_throttled(resp):
            self.wait_turn(resp, tries)
            return True
        is_write = resp.request is not None and resp.request.method not in (None, "GET")
        if resp.status_code >= 500:
            self.count_unavailable(str(canvas_errors.error_for(resp, "")), is_write)
            return False
        with self.lock:
            self.unavailable, self.throttled_since, self.foreign = 0, None, 0
            if is_write:
                self.writes_unavailable = self.foreign_writes = 0
        return False

    def count_foreign(self, error: canvas_errors.CanvasForeignAnswer, is_write: bool):
        """An answer that was not Canvas's: RunStopped, naming what answered, after a few in a row."""
        with self.lock:
            self.foreign += 1
            self.foreign_writes += is_write
            answers, writes = self.foreign, self.foreign_writes
        if answers >= self.FOREIGN_IN_A_ROW or writes >= self.FOREIGN_WRITES_IN_A_ROW:
            many = f"{answers} answers in a row" if answers >= self.FOREIGN_IN_A_ROW else \
                f"{writes} writes in a row"
            self.stop(f"not Canvas's answers ({many}); the last: {error}", unclear=is_write)

    def count_unavailable(self, what: str, is_write: bool = False):
        with self.lock:
            self.unavailable += 1
            self.writes_unavailable += is_write
            self.throttled_since, self.last_failure = None, what
            writes = self.writes_unavailable >= self.WRITES_UNAVAILABLE_IN_A_ROW
            if self.unavailable < self.UNAVAILABLE_IN_A_ROW and not writes:
                return
        if writes:
            self.stop(f"Canvas is unavailable ({self.WRITES_UNAVAILABLE_IN_A_ROW} writes in a row failed; "
                      f"the last: {what})", unclear=is_write)
        self.stop(f"Canvas is unavailable ({self.UNAVAILABLE_IN_A_ROW} requests in a row failed; "
                  f"the last: {what})", unclear=is_write)

    def stop_if_down(self, least: int = 2):
        """At the end of a run: RunStopped if its last requests found Canvas unavailable with no
        answer since (a small batch can end before UNAVAILABLE_IN_A_ROW).

        One failed request at the end, with Canvas answering the ones before it (a row's
        write failing with a 500 while the reads around it work), is that row's failure,
        as it would be in the middle of the file. least: failed requests in a row that make
        an outage here (1 before any row ran: no row is at fault then)."""
        if self.unavailable >= least:
            self.stop(f"Canvas is unavailable (the last {self.unavailable} requests failed; "
                      f"the last: {self.last_failure})")

    def wait_turn(self, resp: requests.Response, tries: int):
        """Throttled: wait until the pacer's bucket has room (plus jitter), unless it is hopeless."""
        now = time.monotonic()
        with self.lock:
            self.unavailable = 0  # Canvas answered: it is up
            self.throttled_since = self.throttled_since or now
            hopeless = now - self.throttled_since >= self.THROTTLED_FOR and self.pacer.limit <= 1
        if hopeless:
            self.stop(f"Canvas kept rate-limiting this token for {self.THROTTLED_FOR / 60:g} minutes "
                      "with one request at a time (another program may be using the same token)")
        # a jitter that grows while this request stays refused, so a crowd does not come back at once
        jitter = random.uniform(0, min(self.MAX_WAIT, 0.25 * 2 ** min(tries, 6)))
        told = canvas_http._retry_after(resp)  # Canvas sends none (request_throttle.rb); a proxy may
        if told is not None:
            time.sleep(min(max(told, jitter), self.MAX_WAIT))
        else:  # until the bucket has leaked enough, as the pacer reckons it
            self.pacer.wait_for_room(jitter)

    def stop(self, reason: str, unclear: bool = False):
        self.halt(reason)
        raise RunStopped(self.reason or reason, unclear)

    def halt(self, reason: str):
        """No attempt from now on (Ctrl-C, SIGTERM, a closed stdout): a request waiting out
        throttling gives up instead of keeping the run alive."""
        with self.lock:
            if self.reason is None:
                self.reason, self.stopped_at = reason, time.monotonic()
