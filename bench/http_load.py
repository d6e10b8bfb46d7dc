"""A lean closed-loop HTTP/1.1 load generator (raw asyncio streams, keep-alive).

``httpx`` costs about 3 ms of CPU per request in the bench process; on a 2-core machine that
CPU is taken from the server being measured. Here every request is encoded to bytes before the
clock starts, each client owns one keep-alive connection and sends its next request as soon as
the previous answer is read (closed loop), and a response is parsed only as far as the status
line and ``Content-Length``. Per-request cost is a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["LoadResult", "Request", "encode", "run_closed_loop"]

Request = bytes


def encode(
    base: str,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> Request:
    """One HTTP/1.1 keep-alive request as bytes."""
    host = urlsplit(base).netloc
    target = path + ("?" + urlencode(params) if params else "")
    body = b"" if json_body is None else json.dumps(json_body).encode()
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if json_body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct_ms(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status


async def _closed_loop(base: str, clients: int, requests: list[Request]) -> LoadResult:
    url = urlsplit(base)
    result = LoadResult()
    queue = list(reversed(requests))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while queue:
                raw = queue.pop()
                t = time.perf_counter()
                writer.write(raw)
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - t)
                result.statuses.append(status)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.wall = time.perf_counter() - start
    return result


def run_closed_loop(base: str, clients: int, requests: list[Request]) -> LoadResult:
    """``clients`` connections, each sending its next request when the last answer arrived."""
    return asyncio.run(_closed_loop(base, clients, requests))
