"""Entry point: ``python -m vidconv.transcoder`` (also ``vidconv transcode``)."""

from __future__ import annotations

import sys

from vidconv.transcoder import cli, lifeline


def main(argv: list[str] | None = None) -> int:
    lifeline.arm()  # first: a transcoder whose server is gone must not go on
    return cli.main(argv)


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
