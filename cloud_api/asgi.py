"""ASGI entry for uvicorn (``cloud_api.asgi:app``), configured from the environment.

``app`` is built lazily by ``__getattr__`` so importing this module does no work.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []  # `app` is provided lazily by __getattr__


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    from cloud_api.app import create_app
    from cloud_api.settings import Settings

    application = create_app(Settings.from_env())
    globals()["app"] = application
    return application
