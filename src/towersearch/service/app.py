"""The FastAPI app: a factory, a lifespan that loads the index once, one router per feature.

Domain errors become HTTP status codes here and only here: a bad option is 400, an unknown product 404, and
request validation (empty or over-long query, ``k`` out of range) 422, always as JSON ``{"detail": …}``.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from towersearch import __version__
from towersearch.errors import ArtifactError, ConfigError
from towersearch.search.engine import MODES, SearchEngine
from towersearch.service import schemas
from towersearch.service.settings import Settings

STATIC = Path(__file__).parent / "static"


class EngineHolder:
    """The live engine; :meth:`swap` replaces it atomically so requests in flight finish on the old one."""

    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def engine(self) -> SearchEngine:
        return self._engine

    def swap(self, engine: SearchEngine) -> None:
        with self._lock:
            self._engine = engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> SearchEngine:
    return request.app.state.holder.engine


Engine = Annotated[SearchEngine, Depends(get_engine)]
Config = Annotated[Settings, Depends(get_settings)]


def create_app(settings: Settings, engine: SearchEngine | None = None) -> FastAPI:
    """Build the app; ``engine`` lets tests pass a loaded engine instead of reading ``settings.index_dir``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = engine or SearchEngine.load(
            settings.index_dir, cache_size=settings.cache_size, quantize_queries=settings.quantize_queries
        )
        app.state.holder = EngineHolder(loaded)
        yield

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
        return schemas.Health(
            status="ok",
            products=len(engine.products),
            index=str(engine.folder),
            built=engine.manifest["created"],
            model=engine.manifest["model"]["path"],
        )

    @app.get("/search", response_model=schemas.SearchResponse, responses={400: {"model": schemas.ErrorBody}})
    def search(
        engine: Engine,
        settings: Config,
        q: Annotated[str, Query(min_length=1, max_length=256, description="The query.")],
        k: Annotated[int, Query(ge=1, le=100, description="Results to return.")] = 10,
        mode: Annotated[str, Query(description="hybrid, dense or lexical.")] = "hybrid",
        department: Annotated[str | None, Query(max_length=256)] = None,
        category: Annotated[str | None, Query(max_length=256)] = None,
        min_score: float | None = None,
    ) -> schemas.SearchResponse:
        if len(q) > settings.max_query_length:
            raise HTTPException(422, f"query longer than {settings.max_query_length} characters")
        if not q.strip():
            raise HTTPException(422, "empty query")
        if mode not in MODES:
            raise HTTPException(400, f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
        results = engine.search(
            q, k=min(k, settings.max_k), mode=mode, department=department, category=category, min_score=min_score
        )
        return schemas.SearchResponse(query=q, mode=mode, results=[r.as_dict() for r in results])

    @app.get("/suggest", response_model=schemas.SuggestResponse)
    def suggest(
        engine: Engine,
        prefix: Annotated[str, Query(min_length=1, max_length=100, description="What the shopper has typed.")],
        k: Annotated[int, Query(ge=1, le=20, description="Suggestions to return.")] = 8,
    ) -> schemas.SuggestResponse:
        if not prefix.strip():
            raise HTTPException(422, "empty prefix")
        suggestions = engine.suggest(prefix, k)
        return schemas.SuggestResponse(prefix=prefix, suggestions=[s.as_dict() for s in suggestions])

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
            attributes=p.attributes,
        )

    @app.get("/products/{product_id}/similar", response_model=schemas.SearchResponse)
    def similar(engine: Engine, product_id: str, k: Annotated[int, Query(ge=1, le=100)] = 10) -> schemas.SearchResponse:
        if product_id not in engine.rows:
            raise HTTPException(404, f"unknown product {product_id!r}")
        results = engine.similar(product_id, k=k)
        return schemas.SearchResponse(query=product_id, mode="similar", results=[r.as_dict() for r in results])

    @app.post("/admin/reload", response_model=schemas.Reloaded, responses={403: {"model": schemas.ErrorBody}})
    def reload(
        request: Request, settings: Config, x_admin_token: Annotated[str | None, Header()] = None
    ) -> schemas.Reloaded:
        if not settings.admin_token:
            raise HTTPException(403, "reload is disabled: set TOWERSEARCH_ADMIN_TOKEN to enable it")
        if x_admin_token != settings.admin_token:
            raise HTTPException(403, "wrong or missing X-Admin-Token header")
        try:
            fresh = SearchEngine.load(
                settings.index_dir, cache_size=settings.cache_size, quantize_queries=settings.quantize_queries
            )
        except ArtifactError as exc:
            raise HTTPException(409, f"reload failed, still serving the previous index: {exc}") from None
        request.app.state.holder.swap(fresh)
        return schemas.Reloaded(reloaded=True, products=len(fresh.products), built=fresh.manifest["created"])

    return app
