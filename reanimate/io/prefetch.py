"""Running a producer one step ahead in a worker thread.

:func:`prefetched` turns an iterator whose items are costly to make (decoded video
frames and their face landmarks) into one whose next items are made in a worker thread
while the caller works on the current one. Native code that releases the GIL (video
decoding, MediaPipe, OpenCV) then runs on another core.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, made up to ``depth`` ahead in a worker thread, in order.

    An exception the producer raises is raised by the consumer at the item where it
    happened. When the consumer stops early (``break``, an exception, closing the
    generator), the worker stops after the item it is making; the generator waits for
    it, so nothing the producer holds (a file, a MediaPipe graph) is used after the
    generator is closed.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as error:  # handed to the consumer
            offer(_Failure(error))
            return
        offer(_DONE)

    worker = threading.Thread(target=work, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
