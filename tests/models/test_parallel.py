"""Units side by side: results in order, and a memory budget that holds."""

from __future__ import annotations

import threading
import time

import pytest

from models.parallel import map_units


@pytest.fixture(autouse=True)
def two_workers(monkeypatch):
    monkeypatch.setenv("CXALIGN_THREADS", "2")


def _tracked():
    """fn that records the largest total size in flight."""
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def fn(item: tuple[str, int]) -> str:
        name, size = item
        with lock:
            state["now"] += size
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= size
        return name

    return fn, state


def test_units_within_the_budget_never_exceed_it_and_results_keep_their_order():
    items = [("a", 6), ("b", 5), ("c", 1), ("d", 3), ("e", 9), ("f", 2)]
    fn, state = _tracked()
    got = map_units(fn, items, sizes=[s for _, s in items], budget=7)
    assert got == ["a", "b", "c", "d", "e", "f"]
    # "e" (9) is larger than the budget: it ran alone; no other moment went above 7.
    assert state["max"] == 9
    fn, state = _tracked()
    small = [it for it in items if it[1] <= 7]
    map_units(fn, small, sizes=[s for _, s in small], budget=7)
    assert state["max"] <= 7


def test_units_that_fit_together_run_together():
    # Each waits for the other at a barrier: it passes only if both are in flight at once.
    meet = threading.Barrier(2, timeout=10)

    def fn(item: str) -> str:
        meet.wait()
        return item

    assert map_units(fn, ["a", "b"], sizes=[3, 4], budget=7) == ["a", "b"]
    assert map_units(fn, ["a", "b"]) == ["a", "b"]  # no budget: one per worker


def test_sizes_must_match_the_items():
    with pytest.raises(ValueError, match="2 sizes for 3 items"):
        map_units(str, [1, 2, 3], sizes=[1, 2], budget=5)


def test_units_that_never_fit_together_run_on_the_calling_thread():
    caller = threading.get_ident()
    ran_on = map_units(lambda _: threading.get_ident(), "abc", sizes=[5, 6, 7], budget=10)
    assert ran_on == [caller] * 3
    # Two of them fit: the workers take them.
    ran_on = map_units(lambda _: threading.get_ident(), "abc", sizes=[4, 6, 7], budget=10)
    assert caller not in ran_on


@pytest.mark.parametrize(
    "kw", [{}, {"sizes": [1, 1, 1], "budget": 2}, {"sizes": [5, 6, 7], "budget": 10}],
    ids=["pool", "pool within a budget", "calling thread"],
)  # fmt: skip
def test_each_unit_is_told_done_once_after_its_work(kw):
    finished, told, lock = set(), [], threading.Lock()

    def fn(item: str) -> str:
        time.sleep(0.01)
        with lock:
            finished.add(item)
        return item.upper()

    def on_done(item: str) -> None:
        with lock:
            assert item in finished  # told after its work, not before
            told.append(item)

    assert map_units(fn, ["a", "b", "c"], on_done=on_done, **kw) == ["A", "B", "C"]
    assert sorted(told) == ["a", "b", "c"]
