"""Where an exception was raised, for the logs, without its message (which may quote patient data)."""

from __future__ import annotations

import traceback


def code_locations(error: BaseException) -> str:
    """The file, line and code of each frame of ``error``'s traceback, without the exception message."""
    return "".join(traceback.format_list(traceback.extract_tb(error.__traceback__)))
