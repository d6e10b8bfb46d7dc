"""One lane's current screen and the live connections (server-sent event streams) watching it.

The hub's thread writes a board with :meth:`LaneBoard.show`; each web connection holds a
:class:`Watcher` and awaits :meth:`Watcher.changed` on the web server's event loop. Boards cap
their watchers so a screen-spammer cannot exhaust the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from gate_agent.display._screens import Screen

__all__ = ["LaneBoard", "TooManyWatchers", "Watcher"]


class TooManyWatchers(RuntimeError):
    """The lane already has as many live display connections as allowed."""


class Watcher:
    """One live connection's wake-up call, set from any thread."""

    def __init__(self, board: LaneBoard, loop: asyncio.AbstractEventLoop) -> None:
        self.board = board
        self._loop = loop
        self._event = asyncio.Event()

    def wake(self) -> None:
        # a RuntimeError: the web server's loop has closed, nobody is listening any more
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._event.set)

    async def changed(self, timeout: float) -> bool:
        """Wait until the board changes (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self.board.release(self)


class LaneBoard:
    def __init__(self, lane_id: str, screen: Screen, max_watchers: int) -> None:
        self.lane_id = lane_id
        self.max_watchers = max_watchers
        self._lock = threading.Lock()
        self._screen = screen
        self._version = 0
        self._watchers: set[Watcher] = set()
        self.closed = False

    def current(self) -> tuple[Screen, int]:
        with self._lock:
            return self._screen, self._version

    def show(self, screen: Screen) -> bool:
        """Put ``screen`` up (a no-op when it is already up); wakes every watcher."""
        with self._lock:
            if screen == self._screen:
                return False
            self._screen = screen
            self._version += 1
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.wake()
        return True

    def watch(self, loop: asyncio.AbstractEventLoop) -> Watcher:
        with self._lock:
            if len(self._watchers) >= self.max_watchers:
                raise TooManyWatchers(
                    f"lane {self.lane_id} already has {self.max_watchers} live displays"
                )
            watcher = Watcher(self, loop)
            self._watchers.add(watcher)
            return watcher

    def release(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)

    @property
    def watchers(self) -> int:
        with self._lock:
            return len(self._watchers)

    def close(self) -> None:
        """The agent is stopping: wake every watcher so its stream ends."""
        with self._lock:
            self.closed = True
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.wake()
