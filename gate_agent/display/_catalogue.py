"""The display's message catalogue: one TOML file of ``key = "text with {placeholders}"`` per
language in ``messages/``; English is the reference every other language must match (a test
checks that every key and placeholder is translated)."""

from __future__ import annotations

import logging
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_LANGUAGE", "Catalogue", "catalogue", "languages"]

log = logging.getLogger(__name__)

MESSAGES_DIR = Path(__file__).parent / "messages"
DEFAULT_LANGUAGE = "en"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""  # a placeholder the caller did not fill stays empty rather than failing


class Catalogue:
    """The messages of one language, English for any key it lacks."""

    def __init__(self, language: str, messages: dict[str, str], fallback: Catalogue | None) -> None:
        self.language = language
        self.messages = messages
        self._fallback = fallback

    def text(self, key: str, **params: object) -> str:
        template = self.messages.get(key)
        if template is None:
            if self._fallback is None:
                raise KeyError(f"no display message {key!r}")
            return self._fallback.text(key, **params)
        return template.format_map(_Blank(params))

    @property
    def decimal_separator(self) -> str:
        return self.messages.get("decimal_separator", ".")


def languages() -> list[str]:
    """The languages shipped (file stems of ``messages/*.toml``)."""
    return sorted(p.stem for p in MESSAGES_DIR.glob("*.toml"))


def _load(language: str) -> dict[str, str]:
    data = tomllib.loads((MESSAGES_DIR / f"{language}.toml").read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data.items()}


@cache
def catalogue(language: str | None) -> Catalogue:
    """The catalogue of ``language``; English (logged once) when it is not shipped."""
    english = Catalogue(DEFAULT_LANGUAGE, _load(DEFAULT_LANGUAGE), None)
    if language is None or language == DEFAULT_LANGUAGE:
        return english
    if language not in languages():
        log.warning("no lane display messages in %r; showing English", language)
        return english
    return Catalogue(language, _load(language), english)
