"""Clocks."""

from __future__ import annotations

import time

from qrlogin.core.clock import FrozenClock, SystemClock


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(1000.0)
    assert clock.now() == 1000.0
    time.sleep(0.01)
    assert clock.now() == 1000.0
    clock.advance(30)
    clock.advance(0.5)
    assert clock.now() == 1030.5


def test_system_clock_is_wall_time() -> None:
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()
