"""The sweep that removes abandoned uploads: their bytes from storage, then their rows.

Every API replica runs it (removal is idempotent, and a row goes only while still expired and
unwritten); it wakes a tenth of the expiry time apart, between 1 s and a minute. In local
storage it also removes partial files no row names (a server killed between creating one and
inserting its row).
"""

from __future__ import annotations

import logging
import time

import anyio

from vidconv.api.context import AppContext
from vidconv.api.services import uploads
from vidconv.api.threads import run_in_thread
from vidconv.api.tus import rows

log = logging.getLogger("vidconv.api")

ORPHAN_AGE = 60.0  # seconds: a partial file younger than this may be a creation in flight


def interval(ctx: AppContext) -> float:
    return min(60.0, max(1.0, ctx.settings.upload_expiry_seconds / 10))


def sweep_orphans(ctx: AppContext) -> None:
    folder = uploads.partial_path(ctx, "x").parent
    if not folder.is_dir():
        return
    known = rows.all_ids(ctx.sessions)
    for path in folder.iterdir():
        if path.name not in known and time.time() - path.stat().st_mtime > ORPHAN_AGE:
            path.unlink(missing_ok=True)


def sweep(ctx: AppContext) -> None:
    uploads.sweep_expired(ctx)
    if uploads.multipart(ctx) is None:
        sweep_orphans(ctx)


async def sweep_forever(ctx: AppContext) -> None:
    while True:
        await anyio.sleep(interval(ctx))
        try:
            await run_in_thread(sweep, ctx)
        except Exception as exc:  # noqa: BLE001 - an outage now is retried at the next wake
            log.warning("could not sweep expired uploads: %s", exc)
