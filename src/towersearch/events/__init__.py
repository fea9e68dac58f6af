"""The search-event store of the live service, its export to the search log, and search analytics.

:class:`EventStore` records what each search showed and what shoppers did next, durably, from any thread;
:meth:`EventStore.export_log` and :meth:`EventStore.iter_log_events` turn it into the search log that ``train``
reads; :func:`analytics` and :func:`save_chart` report on it; :class:`SearchRecorder` records the service's searches
without a disk flush each. See :mod:`towersearch.events.store` for the tables
and guarantees.
"""

from towersearch.events.analytics import analytics, save_chart
from towersearch.events.recorder import SearchRecorder
from towersearch.events.store import SCHEMA_VERSION, EventError, EventStore, is_event_store

__all__ = ["SCHEMA_VERSION", "EventError", "EventStore", "SearchRecorder", "analytics", "is_event_store", "save_chart"]
