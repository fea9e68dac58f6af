"""The FastAPI app: a factory, a lifespan that loads the index once, one router per feature.

Domain errors become HTTP status codes here and only here: a bad option is 400, an unknown product 404,
request validation (empty or over-long query, ``k`` out of range, both bounds set by :class:`Settings`) 422, a
missing or wrong admin token 403 and a failed reload 409, always as JSON ``{"detail": …}``.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import sqlite3
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel

from towersearch import __version__
from towersearch.errors import ConfigError, TowersearchError
from towersearch.index.generations import index_root
from towersearch.search.engine import SearchEngine
from towersearch.service import schemas
from towersearch.service.settings import Settings
from towersearch.text import REVIEW_ATTRIBUTE

STATIC = Path(__file__).parent / "static"

logger = logging.getLogger(__name__)


RETIRE_AFTER = 60.0
"""Seconds a replaced engine stays open for the requests that started on it before it is closed."""


class EngineHolder:
    """The live engine; :meth:`swap` replaces it atomically so requests in flight finish on the old one.

    ``reload_lock`` serialises reloads: one load and swap at a time, so two concurrent reloads never hold two
    freshly loaded engines in memory at once; a second reload waits for the first to finish. A replaced engine is
    closed (:meth:`SearchEngine.close`: its Milvus client, where it has one) ``retire_after`` seconds later, once
    the searches that started on it are long done, and at the latest by :meth:`close` at shutdown.
    """

    def __init__(self, engine: SearchEngine, retire_after: float = RETIRE_AFTER) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self.reload_lock = threading.Lock()
        self.retire_after = retire_after
        self._retiring: dict[SearchEngine, threading.Timer] = {}

    @property
    def engine(self) -> SearchEngine:
        return self._engine

    def swap(self, engine: SearchEngine) -> None:
        with self._lock:
            old, self._engine = self._engine, engine
            if old is engine:
                return
            timer = threading.Timer(self.retire_after, self._retire, args=(old,))
            timer.daemon = True
            self._retiring[old] = timer
        timer.start()

    def _retire(self, engine: SearchEngine) -> None:
        with self._lock:
            due = self._retiring.pop(engine, None) is not None  # not already closed by close()
        if due:
            _close_engine(engine)

    def close(self) -> None:
        """Close every engine: the retired ones now, then the live one (shutdown: no request is in flight)."""
        with self._lock:
            retiring, self._retiring = list(self._retiring.items()), {}
        for engine, timer in retiring:
            timer.cancel()
            _close_engine(engine)
        _close_engine(self._engine)


def _close_engine(engine: SearchEngine) -> None:
    try:
        engine.close()
    except Exception:  # closing is best effort: a server already gone must not fail a swap or the shutdown
        logger.warning("closing a replaced engine failed", exc_info=True)


# The dependencies only read attributes: ``async`` runs them on the event loop, where a plain ``def`` would cost a
# round trip through the thread pool each, on every request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> SearchEngine:
    return request.app.state.holder.engine


Engine = Annotated[SearchEngine, Depends(get_engine)]
Config = Annotated[Settings, Depends(get_settings)]


def load_engine(settings: Settings) -> SearchEngine:
    """Load the index of ``settings`` as the service serves it.

    The objects loaded live as long as the engine, so they are moved out of the garbage collector's way
    (``gc.freeze``): otherwise a full collection walks a million autocomplete candidates in the middle of a request
    (pauses of about 10 ms at 1,000,000 candidates).
    """
    engine = SearchEngine.load(
        settings.index_dir, cache_size=settings.cache_size, quantize_queries=settings.quantize_queries
    )
    gc.collect()
    gc.freeze()
    return engine


DEFAULT_K = 10


def json_response(body: BaseModel) -> Response:
    """``body`` as JSON, serialised by pydantic on the endpoint's own thread.

    An endpoint that returns its model instead has FastAPI validate and serialise it again on a second trip
    through the thread pool; on the hot paths (``/search``, ``/suggest``) that trip is a measurable share of a
    cached request. The declared ``response_model`` still documents the shape.
    """
    return Response(content=body.model_dump_json(), media_type="application/json")


def check_k(k: int | None, settings: Settings) -> int:
    """``k`` within ``settings.max_k`` (else 422); left out, 10 or ``max_k`` if lower."""
    if k is None:
        return min(DEFAULT_K, settings.max_k)
    if k > settings.max_k:
        raise HTTPException(422, f"k must be at most {settings.max_k} (TOWERSEARCH_MAX_K); got {k}")
    return k


def review_insights(insights: dict | None) -> schemas.ReviewInsights | None:
    """A product's stored review insights as the API shows them (``reviews`` is ``count`` there)."""
    if insights is None:
        return None
    return schemas.ReviewInsights(
        count=insights["reviews"], intent_share=insights["intent_share"], most_useful=insights["most_useful"]
    )


def load_failure(exc: Exception) -> str:
    """What went wrong loading an index, in one line for the admin."""
    if isinstance(exc, TowersearchError):
        return str(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{Path(exc.filename).name} is missing"
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot read {Path(exc.filename).name}: {exc.strerror or exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Events:
    """The event store and the recorder of searches, open while the service runs."""

    def __init__(self, settings: Settings) -> None:
        from towersearch.events import EventStore, SearchRecorder

        try:
            self.store = EventStore(settings.events_file, retention_days=settings.events_retention_days)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the event store {settings.events_file}: {exc}; set TOWERSEARCH_EVENTS_PATH to a "
                "writable file, or TOWERSEARCH_RECORD_EVENTS=false"
            ) from None
        purged = self.store.purge()
        if purged:
            logger.info("purged %d searches older than %s days", purged, settings.events_retention_days)
        self.recorder = SearchRecorder(self.store)

    def close(self) -> None:
        self.recorder.close()
        self.store.close()


def open_events(settings: Settings) -> Events | None:
    return Events(settings) if settings.record_events else None


def record(request: Request, query: str, shown: list[str], *, kind: str, mode: str | None = None,
           session_id: str | None = None) -> str | None:  # fmt: skip
    """Record what a request showed; its ``search_id``, or None when recording is off."""
    events = request.app.state.events
    if events is None:
        return None
    return events.recorder.record(query, shown, kind=kind, mode=mode, session_id=session_id or "")


def get_events(request: Request) -> Events:
    events = request.app.state.events
    if events is None:
        raise HTTPException(409, "event recording is off (TOWERSEARCH_RECORD_EVENTS=false)")
    return events


def require_admin(settings: Settings, token: str | None, what: str) -> None:
    """403 unless the admin token is set and ``token`` matches it."""
    if not settings.reload_enabled:
        raise HTTPException(
            403, f"{what} is disabled: set TOWERSEARCH_ADMIN_TOKEN or TOWERSEARCH_ADMIN_TOKEN_FILE to enable it"
        )
    expected = settings.admin_token.get_secret_value().encode()
    if token is None or not secrets.compare_digest(token.encode(), expected):
        raise HTTPException(403, "wrong or missing X-Admin-Token header")


def create_app(settings: Settings, engine: SearchEngine | None = None) -> FastAPI:
    """Build the app; ``engine`` lets tests pass a loaded engine instead of reading ``settings.index_dir``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = engine or load_engine(settings)
        app.state.holder = EngineHolder(loaded)
        app.state.events = open_events(settings)
        try:
            yield
        finally:
            if app.state.events is not None:
                app.state.events.close()
            app.state.holder.close()

    app = FastAPI(title="towersearch", version=__version__, lifespan=lifespan)
    app.state.settings = settings

    @app.exception_handler(ConfigError)
    async def bad_option(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", response_model=schemas.Health)
    def health(engine: Engine) -> schemas.Health:
        built_with = engine.manifest["model"]
        return schemas.Health(
            status="ok",
            products=len(engine.products),
            index=index_root(engine.folder).name,
            generation=engine.manifest.get("generation"),
            built=engine.manifest["created"],
            model=Path(built_with.get("source") or built_with["path"]).name,
            model_fingerprint=built_with.get("fingerprint"),
            model_untrained=built_with.get("untrained"),
        )

    @app.get("/search", response_model=schemas.SearchResponse, responses={400: {"model": schemas.ErrorBody}})
    def search(
        request: Request,
        engine: Engine,
        settings: Config,
        q: Annotated[str, Query(min_length=1, description="The query; at most max_query_length characters.")],
        k: Annotated[int | None, Query(ge=1, description="Results to return: at most max_k; 10 by default.")] = None,
        mode: Annotated[
            str | None, Query(description="ranked, hybrid, dense or lexical (default: ranked when the model has one).")
        ] = None,
        department: Annotated[str | None, Query(max_length=256)] = None,
        category: Annotated[str | None, Query(max_length=256)] = None,
        min_score: float | None = None,
        session_id: Annotated[str | None, Query(max_length=256, description="The shopper's session.")] = None,
    ) -> Response:
        if len(q) > settings.max_query_length:
            raise HTTPException(
                422,
                f"query must be at most {settings.max_query_length} characters (TOWERSEARCH_MAX_QUERY_LENGTH); "
                f"got {len(q)}",
            )
        k = check_k(k, settings)
        if not q.strip():
            raise HTTPException(422, "empty query")
        mode = mode or engine.default_mode
        if mode not in engine.modes:
            raise HTTPException(400, f"unknown mode {mode!r}; allowed: {', '.join(engine.modes)}")
        results = engine.search(q, k=k, mode=mode, department=department, category=category, min_score=min_score)
        shown = [r.product.product_id for r in results]
        search_id = record(request, q, shown, kind="search", mode=mode, session_id=session_id)
        body = schemas.SearchResponse(
            query=q,
            mode=mode,
            results=[r.as_dict() for r in results],
            spelling=engine.corrections(q, mode),
            search_id=search_id,
        )
        return json_response(body)

    @app.get("/suggest", response_model=schemas.SuggestResponse)
    def suggest(
        request: Request,
        engine: Engine,
        prefix: Annotated[str, Query(min_length=1, max_length=100, description="What the shopper has typed.")],
        k: Annotated[int, Query(ge=1, le=20, description="Suggestions to return.")] = 8,
        session_id: Annotated[str | None, Query(max_length=256, description="The shopper's session.")] = None,
    ) -> Response:
        if not prefix.strip():
            raise HTTPException(422, "empty prefix")
        suggestions = engine.suggest(prefix, k)
        search_id = record(request, prefix, [s.text for s in suggestions], kind="suggest", session_id=session_id)
        body = schemas.SuggestResponse(
            prefix=prefix, suggestions=[s.as_dict() for s in suggestions], search_id=search_id
        )
        return json_response(body)

    @app.post(
        "/events",
        response_model=schemas.EventsStored,
        responses={409: {"model": schemas.ErrorBody}, 422: {"model": schemas.EventErrorBody}},
    )
    def post_events(
        body: schemas.EventsBody, settings: Config, events: Annotated[Events, Depends(get_events)]
    ) -> schemas.EventsStored:
        """Store shoppers' events on the results of earlier searches, all or none, durably before answering."""
        from towersearch.events import EventError

        if len(body.events) > settings.max_event_batch:
            raise HTTPException(
                422,
                f"at most {settings.max_event_batch} events per request (TOWERSEARCH_MAX_EVENT_BATCH); "
                f"got {len(body.events)}",
            )
        if not events.recorder.flush():
            raise HTTPException(503, "the event store is not keeping up; try again")
        try:
            stored = events.store.add_events(body.events)
        except EventError as exc:
            return JSONResponse(status_code=422, content={"detail": str(exc), "index": exc.index, "field": exc.field})
        return schemas.EventsStored(stored=stored)

    @app.get("/admin/analytics", responses={403: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}})
    def admin_analytics(
        settings: Config,
        events: Annotated[Events, Depends(get_events)],
        since: Annotated[str | None, Query(description="ISO-8601 start of the window (inclusive).")] = None,
        until: Annotated[str | None, Query(description="ISO-8601 end of the window (exclusive).")] = None,
        top: Annotated[int, Query(ge=1, le=1000, description="Queries per list.")] = 20,
        format: Annotated[str, Query(pattern="^(json|png)$", description="json, or png for a chart.")] = "json",
        x_admin_token: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Top queries, queries without results, queries without clicks, click-through and conversion per query."""
        import tempfile

        from towersearch.events import EventError, analytics, save_chart

        require_admin(settings, x_admin_token, "analytics")
        events.recorder.flush()  # count every search answered before this request (best effort: it may time out)
        try:
            report = analytics(events.store, since=since, until=until, top=top)
        except EventError as exc:
            raise HTTPException(400, str(exc)) from None
        if format == "json":
            return JSONResponse(report)
        with tempfile.TemporaryDirectory() as tmp:
            png = save_chart(report, Path(tmp) / "analytics.png").read_bytes()
        return Response(content=png, media_type="image/png")

    @app.get("/products/{product_id}", response_model=schemas.Product, responses={404: {"model": schemas.ErrorBody}})
    def product(engine: Engine, product_id: str) -> schemas.Product:
        if product_id not in engine.rows:
            raise HTTPException(404, f"unknown product {product_id!r}")
        p = engine.products[engine.rows[product_id]]
        return schemas.Product(
            product_id=p.product_id,
            name=p.name,
            brand=p.brand,
            category=p.category,
            department=p.department,
            size=p.size,
            description=p.description,
            attributes={k: v for k, v in p.attributes.items() if k != REVIEW_ATTRIBUTE},
            reviews=review_insights(engine.review_insights(product_id)),
        )

    @app.get("/products/{product_id}/similar", response_model=schemas.SearchResponse)
    def similar(
        engine: Engine,
        settings: Config,
        product_id: str,
        k: Annotated[int | None, Query(ge=1, description="Results to return: at most max_k; 10 by default.")] = None,
    ) -> schemas.SearchResponse:
        k = check_k(k, settings)
        if product_id not in engine.rows:
            raise HTTPException(404, f"unknown product {product_id!r}")
        results = engine.similar(product_id, k=k)
        return schemas.SearchResponse(query=product_id, mode="similar", results=[r.as_dict() for r in results])

    def apply_update(
        request: Request, settings: Settings, upserts: list, deletes: list[str]
    ) -> schemas.ProductsUpdated:
        """Update the index folder, then load and swap in the new generation, all under the reload lock: the answer
        comes only once the change is on disk and served. A bad product is 422, an unknown product to delete 404,
        a failed update or reload 409 (the previous index keeps serving)."""
        from towersearch.index.update import BatchError, update_index

        holder: EngineHolder = request.app.state.holder
        with holder.reload_lock:  # one update or reload at a time
            try:
                summary = update_index(settings.index_dir, upserts=upserts, deletes=deletes)
            except BatchError as exc:
                if exc.reason == "unknown_product":
                    raise HTTPException(404, exc.message) from None
                where = f"{'products' if exc.batch == 'upserts' else 'deletes'}[{exc.item}].{exc.field}"
                return JSONResponse(
                    status_code=422,
                    content={"detail": f"{where}: {exc.message}", "index": exc.item, "field": exc.field},
                )
            except Exception as exc:  # nothing was switched to: the index on disk and the one served are unchanged
                logger.exception("update of %s failed; the index is unchanged", settings.index_dir)
                raise HTTPException(409, f"update failed, the index is unchanged: {load_failure(exc)}") from None
            if summary["generation"] != holder.engine.manifest.get("generation"):
                try:
                    fresh = load_engine(settings)
                except Exception as exc:
                    logger.exception(
                        "reload of %s after an update failed; still serving the previous index", settings.index_dir
                    )
                    raise HTTPException(
                        409,
                        f"the update is on disk (generation {summary['generation']}) but loading it failed, still "
                        f"serving the previous index: {load_failure(exc)}",
                    ) from None
                holder.swap(fresh)
        logger.info(
            "updated %s: +%d ~%d -%d products, generation %s",
            settings.index_dir,
            summary["added"],
            summary["changed"],
            summary["deleted"],
            summary["generation"],
        )
        return schemas.ProductsUpdated(**summary)

    @app.put(
        "/admin/products",
        response_model=schemas.ProductsUpdated,
        responses={
            403: {"model": schemas.ErrorBody},
            409: {"model": schemas.ErrorBody},
            422: {"model": schemas.ProductErrorBody},
        },
    )
    def put_products(
        request: Request,
        settings: Config,
        body: schemas.ProductsBody,
        x_admin_token: Annotated[str | None, Header()] = None,
    ) -> schemas.ProductsUpdated:
        """Add new products and replace changed ones (by ``product_id``), all or none, without re-encoding the rest of
        the catalogue; answers once the new index generation is on disk and served."""
        from towersearch.data.catalog import parse_product
        from towersearch.errors import DataError

        require_admin(settings, x_admin_token, "updating products")
        products = []
        for i, row in enumerate(body.products):
            try:
                products.append(parse_product(row))
            except DataError as exc:
                return JSONResponse(
                    status_code=422,
                    content={"detail": f"products[{i}].{exc.field}: {exc.message}", "index": i, "field": exc.field},
                )
        return apply_update(request, settings, products, [])

    @app.delete(
        "/admin/products/{product_id}",
        response_model=schemas.ProductsUpdated,
        responses={
            403: {"model": schemas.ErrorBody},
            404: {"model": schemas.ErrorBody},
            409: {"model": schemas.ErrorBody},
        },
    )
    def delete_product(
        request: Request, settings: Config, product_id: str, x_admin_token: Annotated[str | None, Header()] = None
    ) -> schemas.ProductsUpdated:
        """Delete a product from the index; answers once the new index generation is on disk and served."""
        require_admin(settings, x_admin_token, "updating products")
        return apply_update(request, settings, [], [product_id])

    @app.post(
        "/admin/reload",
        response_model=schemas.Reloaded,
        responses={403: {"model": schemas.ErrorBody}, 409: {"model": schemas.ErrorBody}},
    )
    def reload(
        request: Request, settings: Config, x_admin_token: Annotated[str | None, Header()] = None
    ) -> schemas.Reloaded:
        """Load the index folder again and swap it in; on any failure keep serving the previous index (409)."""
        require_admin(settings, x_admin_token, "reload")
        holder: EngineHolder = request.app.state.holder
        with holder.reload_lock:  # one reload at a time; a second one waits here
            try:
                fresh = load_engine(settings)
            except Exception as exc:  # any failure to load, not only ours: a missing file, bad JSON, FAISS, …
                logger.exception("reload of %s failed; still serving the previous index", settings.index_dir)
                raise HTTPException(
                    409, f"reload failed, still serving the previous index: {load_failure(exc)}"
                ) from None
            holder.swap(fresh)
        logger.info(
            "reloaded %s: %d products, generation %s, built %s",
            settings.index_dir,
            len(fresh.products),
            fresh.manifest.get("generation"),
            fresh.manifest["created"],
        )
        return schemas.Reloaded(
            reloaded=True,
            products=len(fresh.products),
            generation=fresh.manifest.get("generation"),
            built=fresh.manifest["created"],
        )

    return app
