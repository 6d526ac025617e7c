"""Helper processes that leave when the process that started them is gone.

A server stopped by a signal runs no exit handlers, and a helper busy decoding or animating never
reads its pipe, so each helper watches its parent itself. The parent's pid is handed over by the
parent: a helper that only looked it up once started could already be an orphan by then (a server
stopped while its helpers were still importing) and would wait for a parent it never had.
"""

import os
import threading
import time

PARENT_CHECK_SECONDS = 1.0


def leave_with_parent(parent: int) -> None:
    """Exit this process as soon as ``parent`` is no longer its parent (at once if it already isn't)."""
    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="leave-with-parent").start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)
