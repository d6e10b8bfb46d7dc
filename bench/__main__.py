"""`make bench`: run every benchmark and print its numbers next to the issue's targets.

`python -m bench [name ...]` runs a subset (names: the modules below).
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = [
    "recognition",
    "lane",
    "lookup",
    "cloud_api",
    "access_list",
    "sync",
    "disk_writes",
    "stay_paid",
    "codes",
]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in names:
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        for line in module.run():
            print(line, flush=True)
            if "FAIL" in line:
                failed.append(name)
        print(f"({name} took {time.perf_counter() - started:.0f} s)\n", flush=True)
    if failed:
        print(f"targets missed in: {', '.join(sorted(set(failed)))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
