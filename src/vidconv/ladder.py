"""The adaptive stream's ladder: the renditions an ``hls`` task gets, chosen for the input.

H.264 at the profile's constant quality, each rendition capped (``-maxrate``, ``-bufsize``
twice that): a simple scene spends less, a complex one no more than its cap over a few seconds
(the master's BANDWIDTH is then measured from the segments). The caps sit a little under
Apple's HLS authoring table for 30 fps H.264 (1080p 6000, 720p 3000..4500, 360p 730..1100
kbit/s) because constant quality rarely needs them; docs/formats.md has what the bench
measured. Never above the input's height: a 720p
input gets 720p, 480p and 360p; an input under 360p gets one rendition at its own height.
"""

from __future__ import annotations

from dataclasses import dataclass

SEGMENT_SECONDS = 4  # keyframes forced every 4 s in every rendition: segments align


@dataclass(frozen=True)
class Rung:
    height: int
    maxrate: int  # kbit/s

    @property
    def name(self) -> str:
        return f"{self.height}p"


LADDER = (Rung(1080, 5000), Rung(720, 2800), Rung(480, 1400), Rung(360, 800))
AUDIO_BITRATE = "128k"


def rungs(height: int, max_height: int = 0, top_bitrate: int = 0) -> list[Rung]:
    """The renditions for an input ``height`` pixels high (as shown), at most ``max_height``;
    ``top_bitrate`` (kbit/s) caps the top one and scales the others alike."""
    limit = min(height, max_height) if max_height else height
    chosen = [r for r in LADDER if r.height <= limit]
    if not chosen:  # smaller than the smallest: one rendition at its own height
        low = LADDER[-1]
        chosen = [Rung(max(2, limit // 2 * 2), max(100, low.maxrate * limit // low.height))]
    if top_bitrate:
        scale = top_bitrate / chosen[0].maxrate
        chosen = [Rung(r.height, max(100, round(r.maxrate * scale))) for r in chosen]
    return chosen
