"""Recording what the service showed without a disk flush on every search.

A durable SQLite commit waits for the disk (about 4 ms here, see ``benchmarks/bench_events.py``): far too much to
add to every ``/search``. :class:`SearchRecorder` checks a search, gives it its ``search_id`` at once and hands it
to one writer thread, which commits whatever has queued up in one transaction (group commit): a burst of searches
costs one flush, not one each. The writer lets a batch gather for ``linger`` seconds (50 ms by default) before it
commits, so searches that arrive one after the other (one shopper, one client) are grouped too: a commit per search
would take the CPU and the interpreter lock from the next search's request while it is being answered.

The trade, written down: a search is acknowledged before it is on disk, so a crash can lose the impressions of the
last ``linger`` (plus one commit) of searches. Shoppers' events are another matter: ``POST /events`` first waits
until every search answered before it is committed (:meth:`SearchRecorder.flush`, which cuts the linger short), then
stores its batch durably before it answers, so an acknowledged event is never lost and always finds its search.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from towersearch.events.store import EventStore, PendingSearch, prepare_search

logger = logging.getLogger(__name__)


class SearchRecorder:
    """Queues searches for :class:`~towersearch.events.store.EventStore` and commits them from one thread.

    Args:
        store: The event store.
        max_batch: Most searches committed in one transaction; a full batch is committed without waiting.
        linger: Seconds a batch may gather before it is committed; :meth:`flush` and :meth:`close` cut it short.
    """

    def __init__(self, store: EventStore, *, max_batch: int = 512, linger: float = 0.05) -> None:
        if linger < 0:
            raise ValueError(f"linger must be >= 0 seconds, got {linger}")
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self._waiting = 0  # flush() calls waiting: the writer commits at once while there are any
        self._queue: list[PendingSearch] = []
        self._cond = threading.Condition()
        self._queued = 0  # searches ever queued
        self._written = 0  # of those, committed (or dropped after a failed write)
        self._closed = False
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="towersearch-search-recorder", daemon=True)
        self._thread.start()

    def record(
        self, query: str, shown: Sequence[str], *, kind: str = "search", mode: str | None = None, session_id: str = ""
    ) -> str:
        """Check a search, queue it and return its ``search_id`` (committed shortly after, by the writer).

        Raises:
            EventError: as :func:`~towersearch.events.store.prepare_search`.
        """
        pending = prepare_search(query, shown, kind=kind, mode=mode, session_id=session_id)
        with self._cond:
            if self._closed:
                raise RuntimeError("the search recorder is closed")
            self._queue.append(pending)
            self._queued += 1
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:  # else the writer is awake already
                self._cond.notify_all()
        return pending.search_id

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every search queued before this call is committed; False when ``timeout`` ran out first."""
        with self._cond:
            target = self._queued
            self._waiting += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._written >= target, timeout)
            finally:
                self._waiting -= 1

    def close(self) -> None:
        """Commit what is queued and stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue and self._closed:
                    return
                self._cond.wait_for(  # let the batch gather, unless someone waits for it
                    lambda: self._closed or self._waiting or len(self._queue) >= self.max_batch, self.linger
                )
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            try:
                self.store.write_searches(batch)
            except Exception:  # the service keeps serving; the searches of this batch are lost, and logged
                self.failures += len(batch)
                logger.exception("could not record %d searches in %s", len(batch), self.store.path)
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()
