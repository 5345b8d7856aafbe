"""Where an IdP paging in the default order left off, so its next page starts after the
previous page's last id instead of an OFFSET that reads every row before it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class Bookmarks:
    """Where recent pages in the default order ended: (query, index) → the last id. Kept a
    minute, per process; a client whose page has no bookmark gets the OFFSET read, and the
    same rows (RFC 7644 §3.4.2.4 does not promise stable index pages under changes either)."""

    def __init__(self, size: int = 256, seconds: float = 60.0):
        self.size, self.seconds = size, seconds
        self._marks: OrderedDict[tuple[Any, ...], tuple[str, float]] = OrderedDict()
        self._guard = threading.Lock()

    def find(self, query: tuple[Any, ...], index: int) -> str | None:
        with self._guard:
            mark = self._marks.get((*query, index))
            if mark is None or time.monotonic() - mark[1] > self.seconds:
                return None
            return mark[0]

    def keep(self, query: tuple[Any, ...], index: int, last_id: str) -> None:
        with self._guard:
            self._marks[(*query, index)] = (last_id, time.monotonic())
            self._marks.move_to_end((*query, index))
            while len(self._marks) > self.size:
                self._marks.popitem(last=False)
