"""The drivers' lane display: a screen by each barrier saying what the gate decided and why.

- :class:`DisplayHub` turns lane outcomes into screens on its own thread (lanes only enqueue),
  clears them back to idle after a few seconds and drives the optional lane lights.
- :class:`LaneBoard` holds a lane's current screen for the live connections (capped per lane).
- :func:`screen_for_pass` is the pure mapping from a decision's reason to words and next steps;
  the words come from the catalogue in ``messages/*.toml`` (:func:`catalogue`).
- :func:`pay_url` is the pay-by-plate link shown as a QR code when a car owes money.

The web routes are in :mod:`gate_agent.web.pages_display`.
"""

from gate_agent.display._board import LaneBoard, TooManyWatchers, Watcher
from gate_agent.display._catalogue import DEFAULT_LANGUAGE, Catalogue, catalogue, languages
from gate_agent.display._hub import DisplayHub
from gate_agent.display._pay import pay_url
from gate_agent.display._screens import PassView, Screen, ScreenState, idle_screen, screen_for_pass

__all__ = [
    "DEFAULT_LANGUAGE",
    "Catalogue",
    "DisplayHub",
    "LaneBoard",
    "PassView",
    "Screen",
    "ScreenState",
    "TooManyWatchers",
    "Watcher",
    "catalogue",
    "idle_screen",
    "languages",
    "pay_url",
    "screen_for_pass",
]
