"""An HTTP detection server: FastAPI routes over the one inference path, with request batching.

:func:`create_app` builds the application (routes in :mod:`~sparsercnn.serving.app`), the
:class:`~sparsercnn.serving.batching.RequestBatcher` gathers concurrent requests into batches on
one worker thread that owns the model, and ``static/`` holds the web page served at ``/``.
Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, and fastapi-offline for the API
docs without a CDN); nothing else in the package imports this one.
"""

from sparsercnn.serving.app import create_app
from sparsercnn.serving.limits import Limits

__all__ = ["Limits", "create_app"]
