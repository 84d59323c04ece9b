"""Memory routes: store, search, get, delete, namespaces — scoped by the caller's tenant."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api.bodies import Body, decode_json, parse
from agentbus.api.routes import json_body, tenant_of
from agentbus.domain import AgentbusError, InvalidInput
from agentbus.services import MemoryService


class MemoryItemIn(Body):
    id: str | None = Field(default=None, min_length=1, max_length=200)
    text: str | None = None
    metadata: dict[str, Any] | None = None
    vector: list[float] | None = None
    ttl: float | None = Field(default=None, gt=0)


class StoreMemory(Body):
    namespace: str = Field(min_length=1, max_length=120)
    items: list[MemoryItemIn] = Field(min_length=1)


class SearchMemory(Body):
    namespace: str = Field(min_length=1, max_length=120)
    q: str | None = None
    vector: list[float] | None = None
    k: int = Field(default=10, ge=1, le=1000)
    filter: dict[str, Any] | None = None
    # hybrid: BM25 over the items' text fused with the vector ranking (reciprocal rank fusion)
    mode: Literal["vector", "hybrid"] = "vector"


def _service(request: Request) -> MemoryService:
    svc: MemoryService = request.app.state.memory
    return svc


async def store(request: Request) -> JSONResponse:
    body = parse(StoreMemory, await json_body(request))
    items = [it.model_dump(exclude_none=True) for it in body.items]
    ids = await run_in_threadpool(_service(request).store_items, tenant_of(request), body.namespace, items)
    return JSONResponse({"namespace": body.namespace, "ids": ids}, status_code=201)


async def search_get(request: Request) -> JSONResponse:
    q = request.query_params
    unknown = set(q) - {"namespace", "q", "k", "filter", "mode"}
    if unknown:
        raise InvalidInput(f"unknown query parameters: {', '.join(sorted(unknown))}")
    raw_k = q.get("k", "10")
    if not (raw_k.lstrip("-").isdigit() and raw_k.isascii() and len(raw_k) <= 6):  # "²" is a digit to isdigit
        raise InvalidInput(f"k must be a whole number from 1 to 1000, got {raw_k!r}")
    flt = _filter_param(request, q["filter"]) if "filter" in q else None
    given = {"namespace": q.get("namespace", ""), "q": q.get("q"), "k": int(raw_k), "filter": flt}
    body = parse(SearchMemory, {**given, "mode": q.get("mode", "vector")})
    return await _search(request, body)


def _filter_param(request: Request, raw: str) -> Any:
    """``?filter=`` decoded as a body is, within the same limits; every refusal is a 400 here."""
    cfg = request.app.state.agentbus.settings
    try:
        return decode_json(raw, cfg.max_json_depth, cfg.max_array_length)
    except AgentbusError as exc:
        raise InvalidInput(f"filter: {exc.message}") from None


async def search_post(request: Request) -> JSONResponse:
    return await _search(request, parse(SearchMemory, await json_body(request)))


async def _search(request: Request, body: SearchMemory) -> JSONResponse:
    query: dict[str, Any] = {"q": body.q, "vector": body.vector, "k": body.k, "filter": body.filter}
    hits = await run_in_threadpool(
        lambda: _service(request).search(tenant_of(request), body.namespace, mode=body.mode, **query)
    )
    return JSONResponse({"namespace": body.namespace, "hits": hits})


async def get_item(request: Request) -> JSONResponse:
    p = request.path_params
    item = await run_in_threadpool(_service(request).get_item, tenant_of(request), p["namespace"], p["item_id"])
    return JSONResponse(item)


async def delete_item(request: Request) -> JSONResponse:
    p = request.path_params
    await run_in_threadpool(_service(request).delete_item, tenant_of(request), p["namespace"], p["item_id"])
    return JSONResponse({"deleted": p["item_id"]})


async def list_namespaces(request: Request) -> JSONResponse:
    rows = await run_in_threadpool(_service(request).namespaces, tenant_of(request))
    return JSONResponse({"namespaces": rows})


async def delete_namespace(request: Request) -> JSONResponse:
    name = request.path_params["namespace"]
    n = await run_in_threadpool(_service(request).delete_namespace, tenant_of(request), name)
    return JSONResponse({"deleted": name, "items": n})
