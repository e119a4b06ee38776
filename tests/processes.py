"""The process table, read from /proc: which transcoders (and their ffmpeg) run for a task."""

from __future__ import annotations

from pathlib import Path


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0], cmdline)
    return table


def transcoders(task_id: str) -> dict[int, str]:
    """Live transcoders of the task (pid -> state) and the ffmpeg under each (pid -> "ffmpeg")."""
    table = processes()
    found = {pid: state for pid, (_, state, cmd) in table.items()
             if "vidconv.transcoder" in cmd and f"/{task_id}/" in cmd and state != "Z"}
    # A transcoder's child between fork and exec (its ffprobe or ffmpeg about to start) still
    # shows the transcoder's command line: it is not a second transcoder.
    found = {pid: state for pid, state in found.items() if table[pid][0] not in found}
    found |= {pid: "ffmpeg" for pid, (ppid, state, cmd) in table.items()
              if ppid in found and "ffmpeg" in cmd and state != "Z"}
    return found
