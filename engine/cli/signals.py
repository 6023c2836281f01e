"""Long-running commands (``simulate``, ``replay``) that end early, with their summary, on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until_signalled(run: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """``run(stop)``, with SIGINT and SIGTERM setting ``stop`` instead of killing the process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not available off the main thread or on some platforms: then Ctrl-C simply aborts
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        return await run(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
