"""A FastAPI service over the asyncio API: append with an expected version, load, timeline.

Run it (after ``eventsource migrate``)::

    pip install fastapi uvicorn
    EVENTSOURCE_DATABASE_URL=postgresql://user@host/db uvicorn examples.fastapi_app:app

- ``POST /plans/{plan_id}/events`` appends a batch. An ``If-Match: <version>``
  header makes it conditional (``If-Match: *`` means "the plan has events"); a
  stale version answers 412 with the actual version, so the client re-reads
  and decides again.
- ``GET /plans/{plan_id}`` serves the plan's state with its version as ``ETag``.
- ``GET /plans/{plan_id}/timeline?limit=&before=`` pages the plan's events,
  newest first.

HTTP status codes live here, at the edge; the library's errors carry none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eventsource import (
    ANY,
    STREAM_EXISTS,
    AsyncEventStore,
    ConcurrencyConflict,
    ExpectedVersion,
    IdempotencyConflict,
    InvalidInput,
    NewEvent,
    StoreUnavailable,
    TimelineCursor,
    UnknownPlan,
    UnknownReference,
)
from projections import AsyncProjectionEngine, CourseDesignerPlanProjection

PROJECTION = CourseDesignerPlanProjection()


class EventIn(BaseModel):
    event_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    stage: str | None = None
    actor_user_id: UUID | None = None
    occurred_at: datetime | None = None
    id: UUID | None = None


class AppendIn(BaseModel):
    events: list[EventIn]


def create_app(database_url: str | None = None) -> FastAPI:
    """The app, on ``database_url`` (else ``EVENTSOURCE_DATABASE_URL``, else the default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncEventStore.from_url(database_url) as store:
            app.state.store = store
            app.state.engine = AsyncProjectionEngine(store)
            yield

    app = FastAPI(title="course-designer plans", lifespan=lifespan)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownReference) else 422
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=status)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.post("/plans/{plan_id}/events", status_code=201)
    async def append(
        plan_id: UUID,
        body: AppendIn,
        request: Request,
        if_match: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        expected = _expected(if_match)
        events = [NewEvent(**event.model_dump()) for event in body.events]
        try:
            result = await request.app.state.store.append(
                plan_id, events, expected_version=expected
            )
        except ConcurrencyConflict as exc:
            raise HTTPException(412, {"detail": str(exc), "actual_version": exc.actual}) from exc
        except IdempotencyConflict as exc:
            raise HTTPException(409, {"detail": str(exc), "fields": exc.fields}) from exc
        return {
            "version": result.version,
            "appended": result.appended,
            "event_ids": [str(ident) for ident in result.event_ids],
        }

    @app.get("/plans/{plan_id}")
    async def state(plan_id: UUID, request: Request) -> JSONResponse:
        try:
            loaded = await request.app.state.engine.load(PROJECTION, plan_id)
        except UnknownPlan as exc:
            raise HTTPException(404, str(exc)) from exc
        version = await request.app.state.store.version(plan_id)
        return JSONResponse(loaded.json, headers={"ETag": f'"{version}"'})

    @app.get("/plans/{plan_id}/timeline")
    async def timeline(
        plan_id: UUID,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: str | None = None,
    ) -> dict[str, Any]:
        cursor = None if before is None else TimelineCursor.decode(before)
        page = await request.app.state.store.timeline(plan_id, before=cursor, limit=limit)
        return {
            "events": [
                {
                    "id": str(event.id),
                    "event_type": event.event_type,
                    "stage": event.stage,
                    "payload": event.payload,
                    "occurred_at": event.occurred_at.isoformat(),
                    "created_at": event.created_at.isoformat(),
                }
                for event in page.events
            ],
            "next": None if page.next_cursor is None else page.next_cursor.encode(),
        }

    return app


def _expected(if_match: str | None) -> ExpectedVersion:
    if if_match is None:
        return ANY
    value = if_match.strip().strip('"')
    if value == "*":
        return STREAM_EXISTS
    if not value.isdigit():
        raise HTTPException(400, "If-Match takes a version number (the ETag) or *")
    return int(value)


app = create_app()
