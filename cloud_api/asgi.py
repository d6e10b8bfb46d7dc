"""ASGI entry for an external ASGI server (``uvicorn cloud_api.asgi:app``), configured from the
environment through :func:`cloud_api.settings.load_settings`. ``cloud-api serve`` does not come
through here (its worker processes get the settings validated once at the command line).

``app`` is built lazily by ``__getattr__`` so importing this module does no work.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []  # `app` is provided lazily by __getattr__


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    from cloud_api.app import create_app
    from cloud_api.settings import load_settings

    application = create_app(load_settings())
    globals()["app"] = application
    return application
