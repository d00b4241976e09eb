"""HTTP methods beyond the routes' own: HEAD wherever GET works, and OPTIONS (and a 405's ``Allow``)
listing every method a path answers.

FastAPI routes answer exactly the methods they declare, while HTTP (RFC 9110 §9.3.2) wants HEAD
wherever GET works: players and link checkers ask for a file's size and type that way. Each GET
route gets a HEAD twin (same endpoint, dependencies and headers; the server sends no body, and
Starlette's file responses do not even read the file). The twins stay out of the OpenAPI document,
whose description says that every GET also answers HEAD.

Starlette's own 405 names the methods of the first route that matched the path only (``GET`` for
``/v1/search``, which also takes POST); :func:`allowed_methods` asks every route of the app.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

# The methods a route of this API may declare (OPTIONS is answered for every path that exists).
_ROUTE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def add_head_routes(router: APIRouter) -> None:
    """Give every GET route of ``router`` (call it before the router is included) a HEAD twin;
    calling it again adds none (the route modules' routers are shared by every app)."""
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    has_head = {r.path for r in routes if "HEAD" in (r.methods or ())}
    for route in routes:
        if "GET" not in (route.methods or ()) or route.path in has_head:
            continue
        router.add_api_route(
            route.path.removeprefix(router.prefix),
            route.endpoint,
            methods=["HEAD"],
            name=f"{route.name}_head",
            include_in_schema=False,
            response_model=route.response_model,
            response_class=route.response_class,
            status_code=route.status_code,
            dependencies=route.dependencies,
        )


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` answers at this request's path, OPTIONS included."""
    allowed = {"OPTIONS"}
    for method in _ROUTE_METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes):
            allowed.add(method)
    return sorted(allowed)
