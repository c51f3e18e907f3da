"""The API documentation page, ``/docs`` (Swagger UI), served with no network.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN, so on an offline
machine they are blank. ``/docs`` here is FastAPI's page (``get_swagger_ui_html``, FastAPI's
documented way to self-host it) with its script, style and icon served from the
``fastapi-offline`` package of the ``serve`` extra (Swagger UI 5, installed from PyPI), mounted at
:data:`DOCS_ASSETS_URL`. There is no ``/redoc``: ReDoc's bundle still fetches its logo from its
CDN.
"""

from __future__ import annotations

import importlib.util

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")
DOCS_ASSETS_URL = "/docs-assets"
SERVE_EXTRA_HINT = "pip install 'sparsercnn[serve]'"


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` of ``app`` (made with ``docs_url=None, redoc_url=None``) from local
    files.

    Raises:
        ImportError: ``fastapi-offline`` (the ``serve`` extra) is not installed.
    """
    if importlib.util.find_spec(DOCS_ASSETS_PACKAGE[0]) is None:
        raise ImportError(
            f"the API docs at /docs need the {DOCS_ASSETS_PACKAGE[0]} package (Swagger UI "
            f"without a CDN): {SERVE_EXTRA_HINT}"
        )
    app.mount(DOCS_ASSETS_URL, StaticFiles(packages=[DOCS_ASSETS_PACKAGE]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            # No badge asking validator.swagger.io about the schema.
            swagger_ui_parameters={"validatorUrl": None},
        )
