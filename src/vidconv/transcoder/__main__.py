"""Entry point: ``python -m vidconv.transcoder`` (also ``vidconv transcode``)."""

from __future__ import annotations

import sys

from vidconv.transcoder.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
