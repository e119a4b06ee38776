"""What went wrong when ffmpeg failed, in one sentence and one of four codes.

ffmpeg's own words (``[aac @ 0x56…] Number of bands (47) exceeds limit``) are for operators:
they go to the log and the error's ``detail``, never into the message a user reads.

| code | exit | when |
|---|---|---|
| ``corrupt_input`` | 2 | the input's data could not be read or decoded |
| ``unsupported_stream`` | 2 | a stream uses a feature ffmpeg cannot decode |
| ``resource_limit`` | 1 | out of memory or disk, or ffmpeg was killed (an OOM kill) |
| ``internal_error`` | 1 | anything else: our arguments or ffmpeg itself, not the input |

The policy for damaged inputs is the same in every target, because it is decided on the
decoding side, which every target shares: packets that fail to decode are skipped (the gaps are
filled, see vidconv.transcoder.adapt) unless more than half the frames fail
(``-max_error_rate``), and an output much shorter than the input is ``truncated_input``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vidconv.transcoder.errors import BadInput, Retryable, TranscodeError

MAX_ERROR_RATE = "0.5"  # more failed frames than this and the input counts as corrupt

_RESOURCE = re.compile(r"No space left on device|Cannot allocate memory|Out of memory|"
                       r"Too many open files|Disk quota exceeded|Resource temporarily unavail",
                       re.I)
_CORRUPT = re.compile(r"Invalid data found when processing input|Error while decoding|"
                      r"Decoding error|Error submitting packet to decoder|"
                      r"corrupt|Header missing|moov atom not found|error reading header|"
                      r"Invalid NAL|decode_slice_header|concealing|exceeds limit|"
                      r"Input buffer exhausted|non monotonically increasing dts|"
                      r"Truncating packet|partial file|Packet mismatch|invalid frame|"
                      r"End of file|overread|out of range|damaged|Error splitting the input",
                      re.I)
_UNSUPPORTED = re.compile(r"Decoder \(codec .*\) not found|No decoder|not supported|"
                          r"[Uu]nsupported|not implemented|Function not implemented|"
                          r"unspecified (size|pixel format)|Could not find codec parameters",
                          re.I)

MESSAGES = {
    "corrupt_input": "The input is damaged: ffmpeg could not read or decode enough of it.",
    "unsupported_stream": "The input uses a video or audio feature that this converter cannot "
                          "decode.",
    "resource_limit": "The conversion ran out of memory or disk space; it can be retried.",
    "internal_error": "The conversion failed because of an internal error, not because of "
                      "the input; it can be retried.",
}


def classify(returncode: int, stderr: Sequence[str]) -> TranscodeError:
    """The error for an ffmpeg that exited with ``returncode`` after writing ``stderr``."""
    text = "\n".join(stderr)
    detail = text[-4000:] or f"exit status {returncode}"
    if returncode < 0 or _RESOURCE.search(text):
        return Retryable("resource_limit", MESSAGES["resource_limit"], detail)
    # Damaged data often makes decoders say "not implemented" too: corrupt wins.
    if _CORRUPT.search(text):
        return BadInput("corrupt_input", MESSAGES["corrupt_input"], detail)
    if _UNSUPPORTED.search(text):
        return BadInput("unsupported_stream", MESSAGES["unsupported_stream"], detail)
    return Retryable("internal_error", MESSAGES["internal_error"], detail)


def decode_problems(stderr: Sequence[str]) -> int:
    """How many of ffmpeg's complaints were about damaged input data (skipped, not fatal)."""
    return sum(1 for line in stderr if _CORRUPT.search(line))
