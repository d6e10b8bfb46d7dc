"""ParkGate benchmarks: `make bench` runs `python -m bench`."""
