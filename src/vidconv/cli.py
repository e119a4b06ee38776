"""``vidconv`` command line: the servers (serve | operator | transcode | db upgrade) and the
client (convert | signup | login | logout | tasks | download | delete)."""

from __future__ import annotations

import argparse
import sys

from vidconv.client.main import COMMANDS as CLIENT_COMMANDS
from vidconv.client.main import register, run, unrecognized


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vidconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the REST API (and local workers) with uvicorn")
    sub.add_parser("operator", help="run the kopf operator (Kubernetes mode)")
    sub.add_parser(
        "transcode",
        help="run the transcoder (same as python -m vidconv.transcoder)",
        add_help=False,
    )
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply the Alembic migrations up to head")
    register(sub)

    args, rest = parser.parse_known_args(argv)
    if args.command == "transcode":
        from vidconv.transcoder.__main__ import main as transcode

        return transcode(rest)
    if rest and args.command in CLIENT_COMMANDS:
        parser.error(unrecognized(rest))
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command in CLIENT_COMMANDS:
        return run(args)
    if args.command == "serve":
        from vidconv.api.server import serve

        return serve()
    if args.command == "operator":
        from vidconv.operator.main import run as operate

        return operate()
    if args.command == "db":
        from vidconv.db.session import upgrade
        from vidconv.settings import get_settings

        upgrade(get_settings().sqlalchemy_url)
        print("database is at the newest revision")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
