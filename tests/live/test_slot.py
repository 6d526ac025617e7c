"""The one-item mailbox between a camera and the engine."""

import threading

from animatica.live.slot import LatestSlot


def test_put_replaces_the_unread_item_and_counts_it() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.dropped == 2
    assert slot.pending
    assert slot.take(timeout=0) == 3
    assert not slot.pending
    assert slot.take(timeout=0) is None  # nothing left: the replaced items are gone
    assert slot.put(4) is False  # the previous one was taken, not dropped
    assert slot.dropped == 2


def test_close_wakes_a_waiting_taker_and_ignores_later_puts() -> None:
    slot: LatestSlot[int] = LatestSlot()
    results: list[int | None] = []
    taker = threading.Thread(target=lambda: results.append(slot.take()))
    taker.start()
    slot.close()
    taker.join(timeout=30)
    assert not taker.is_alive() and results == [None]
    assert slot.put(5) is False
    assert slot.take(timeout=0) is None and slot.closed


def test_close_lets_go_of_the_unread_item() -> None:
    slot: LatestSlot[object] = LatestSlot()
    slot.put(object())
    slot.close()
    assert not slot.pending


def test_a_waiting_taker_gets_the_item_put_later() -> None:
    slot: LatestSlot[str] = LatestSlot()
    results: list[str | None] = []
    taker = threading.Thread(target=lambda: results.append(slot.take()))
    taker.start()
    slot.put("frame")
    taker.join(timeout=30)
    assert results == ["frame"]
