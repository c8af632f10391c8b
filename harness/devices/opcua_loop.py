"""One private asyncio event loop on a background thread: how a synchronous driver runs asyncua.

The Device API is synchronous (suites read like the requirement they check); asyncua is async.
Each OPC UA device owns one loop on one daemon thread, so its sessions, subscriptions and channel
renewals live on that loop whatever thread the suite calls from, and two devices never share one.
Every wait on it is bounded: a call that outlives its bound is cancelled on the loop and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")


class LoopClosed(RuntimeError):
    """The device was closed: its loop runs nothing more."""


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"opcua-{name}", daemon=True)
        self._closed = False
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait at most ``timeout`` s; on expiry it is cancelled and
        ``TimeoutError`` raised. Exceptions of the coroutine propagate as they are.

        The hop is one task on the loop that hands itself back through a ``SimpleQueue`` (a C lock
        the caller blocks on), not ``run_coroutine_threadsafe``'s chained futures and condition: every
        suite's call crosses it, and it was the driver's largest cost over raw asyncua (issue 18)."""
        if self._closed:
            coro.close()
            raise LoopClosed("the OPC UA device is closed")
        done: SimpleQueue[asyncio.Task[T]] = SimpleQueue()
        started: list[asyncio.Task[T]] = []

        def start() -> None:
            task = self.loop.create_task(coro)
            started.append(task)
            task.add_done_callback(done.put)

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed under us
            coro.close()
            raise LoopClosed("the OPC UA device is closed") from None
        try:
            task = done.get(timeout=timeout)
        except Empty:
            with contextlib.suppress(RuntimeError):  # a closed loop has cancelled it already
                self.loop.call_soon_threadsafe(_abandon, started)  # runs after start(): FIFO
            raise TimeoutError(f"no result within {timeout:g} s") from None
        try:
            return task.result()
        except asyncio.CancelledError:
            raise TimeoutError("cancelled") from None

    def close(self, cleanup: Coroutine[Any, Any, Any] | None = None, timeout: float = 3.0) -> None:
        """Run ``cleanup`` (bounded), cancel what is left, stop the loop and join the thread."""
        if self._closed:
            if cleanup is not None:
                cleanup.close()
            return
        try:
            if cleanup is not None:
                with contextlib.suppress(Exception):  # a dead device's sessions fail to close; sockets go anyway
                    self.run(cleanup, timeout)
            with contextlib.suppress(Exception):
                self.run(_cancel_rest(), timeout)
        finally:
            self._closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()


def _abandon(started: list[asyncio.Task[Any]]) -> None:
    """Cancel a call nobody waits for any more; whatever it ends with is taken (not logged as unretrieved)."""
    for task in started:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _cancel_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
