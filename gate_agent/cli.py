"""``gate-agent`` command line: check-config, read-plates, run, hash-password, make-cert.

Exit codes: 0 ok, 1 some input failed (read-plates), 2 the command or config is unusable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gate_agent.config import ConfigError, load_config

__all__ = ["main"]

log = logging.getLogger(__name__)


def _check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 2
    print("ok")
    return 0


def _read_plates(args: argparse.Namespace) -> int:
    from gate_agent.recognition import Recognizer, UnreadableImage, models_dir_from_env

    models_dir = Path(args.models_dir) if args.models_dir else models_dir_from_env()
    recognizer = Recognizer.from_models(models_dir, threads=args.threads)
    status = 0
    for image in args.images:
        started = time.perf_counter()
        try:
            reads = recognizer.read_file(image)
        except UnreadableImage as exc:
            status = 1
            line: dict[str, object] = {"image": image, "error": str(exc)}
        else:
            line = {
                "image": image,
                "plates": [
                    {"text": r.text, "confidence": round(r.confidence, 4), "box": list(r.box)}
                    for r in reads
                ],
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        if args.json:
            print(json.dumps(line), flush=True)
        elif "error" in line:
            print(f"{image}: error: {line['error']}", flush=True)
        else:
            plates = ", ".join(f"{p['text']} ({p['confidence']:.2f})" for p in line["plates"])  # type: ignore[attr-defined]
            print(f"{image}: {plates or 'no plate'} [{line['ms']} ms]", flush=True)
    return status


def _run(args: argparse.Namespace) -> int:
    from gate_agent.app import run_agent

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return run_agent(config)


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from gate_agent.web.passwords import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("the password must not be empty", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _make_cert(args: argparse.Namespace) -> int:
    from gate_agent.web.certs import CertError, make_self_signed

    try:
        digest = make_self_signed(Path(args.cert), Path(args.key), args.host, days=args.days)
    except CertError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"certificate: {args.cert}")
    print(f"private key: {args.key} (mode 0600)")
    print(f"SHA-256 fingerprint: {digest}")
    print("Set web.tls_cert_file and web.tls_key_file to these paths; operators compare the")
    print("fingerprint with the one their browser shows before trusting the certificate.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-agent", description="ParkGate lot gate agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="validate a config file; print ok or the problems")
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    read = sub.add_parser("read-plates", help="read the plates in image files")
    read.add_argument("--json", action="store_true", help="one JSON object per image and line")
    read.add_argument("--models-dir", help="model directory (default $PARKGATE_MODELS_DIR)")
    read.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    read.add_argument("images", nargs="+", metavar="IMAGE")
    read.set_defaults(func=_read_plates)

    run = sub.add_parser("run", help="run every lane of the lot")
    run.add_argument("--config", required=True, help="agent TOML config")
    run.set_defaults(func=_run)

    hashpw = sub.add_parser(
        "hash-password", help="print a scrypt hash for web.operators[].password_hash"
    )
    hashpw.add_argument("--stdin", action="store_true", help="read the password from stdin")
    hashpw.set_defaults(func=_hash_password)

    cert = sub.add_parser(
        "make-cert", help="make a self-signed HTTPS certificate for the web UI; print its SHA-256"
    )
    cert.add_argument("--cert", default="/etc/parkgate/web-cert.pem", help="certificate (PEM)")
    cert.add_argument("--key", default="/etc/parkgate/web-key.pem", help="private key (PEM)")
    cert.add_argument("--days", type=int, default=825, help="validity in days")
    cert.add_argument(
        "host", nargs="+", help="host names and addresses operators browse to (e.g. 10.0.0.5)"
    )
    cert.set_defaults(func=_make_cert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The daemon logs to stdout for journald; one-shot commands keep stdout for their results.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stdout if args.command == "run" else sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
