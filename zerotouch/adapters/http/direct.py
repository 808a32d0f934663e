"""Routes served without the framework's layers, for the calls devices make thousands of times."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from zerotouch.adapters.http import problems
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services.core import Core


class DirectRoutes:
    """ASGI middleware that hands the routes of ``router`` (the Device API's two, the nRF91
    protocol's two) straight to their endpoints.

    Devices call them several times each, thousands at a time; the framework's layers between
    the server and an endpoint (exception middleware, exit stack, routing, the route's handler)
    cost a seventh of the server's CPU per device (py-spy under bench/provision.py), and these
    endpoints use none of them: they read the request themselves. Errors become the same
    problem responses as anywhere else (or ``on_error``'s, for a protocol with statuses of
    its own). Other methods and paths go on to the application,
    where the same routes are declared (and documented).
    """

    def __init__(
        self,
        app: ASGIApp,
        router: APIRouter,
        count: Callable[[Core, str, str], None],
        on_error: Callable[[Request, ZerotouchError], Awaitable[Response]] | None = None,
    ) -> None:
        self.app = app
        self.count = count
        self.on_error = on_error or problems.on_domain_error
        self.routes = {
            (method, route.path): route
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            route = self.routes.get((scope["method"], path))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # As routing would set it (the metrics' label).
        request = Request(scope, receive, send)
        response: Response
        try:
            response = await route.endpoint(request)
            outcome = "empty" if response.status_code == 204 else "ok"
        except ZerotouchError as exc:
            response = await self.on_error(request, exc)
            outcome = exc.code
        except Exception as exc:
            response = await problems.on_unexpected(request, exc)
            outcome = "internal_error"
        self.count(request.app.state.core, scope["method"], outcome)
        await response(scope, receive, send)
