"""The caller's clock (issue 12, item 10): a stray future `ts` is refused at the door, so it
cannot hold the clock and the drawdown window in the future."""

from __future__ import annotations

import pytest
from conftest import book

import adl


def drawdown_engine() -> adl.Engine:
    # Window 1,000, arm below −30 %, disarm above −25 % (the defaults).
    eng = adl.Engine(insurance_fund=100.0, trigger="drawdown", trigger_window=1_000)
    eng.load(book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0)]))
    return eng


def test_a_stray_future_ts_is_refused_and_the_window_keeps_sliding() -> None:
    eng = drawdown_engine()
    eng.set_marks(96.0, ts=0)
    eng.insurance_fund = 60.0  # at ts 0: (60 − 100)/100 = −40 % < −30 %: armed
    assert eng.adl_state().state == "armed" and eng.adl_state().level == pytest.approx(-0.4)
    before = eng.snapshot()
    # 10^12 is 10^12 ahead of the clock (0), beyond one window (1,000): refused, nothing changed.
    with pytest.raises(adl.InvalidInputError, match="max_ts_step = 1000") as e:
        eng.set_marks(96.0, ts=10**12)
    assert e.value.field == "ts" and eng.snapshot() == before
    with pytest.raises(adl.InvalidInputError):
        eng.set_marks(96.0, ts=1_001)  # one past the window
    # Exactly one window ahead is accepted: at ts 1,000 the samples at ts 0 are still inside
    # [0, 1,000], so the maximum is 100 and the drawdown −40 %: still armed.
    eng.set_marks(96.0, ts=1_000)
    assert eng.adl_state().state == "armed"
    # At 1,001 the ts-0 samples (100 and 60) leave [1, 1,001]; the maximum is the current 60:
    # drawdown 0 > −25 %: disarmed. (Had ts 10^12 been taken, every later ts would be "before
    # the clock" and the window would never slide again.)
    eng.set_marks(96.0, ts=1_001)
    assert eng.adl_state().state == "normal" and eng.adl_state().level == 0.0


def test_max_ts_step_is_a_setting() -> None:
    eng = drawdown_engine()
    assert eng.max_ts_step is None
    eng.set_marks(96.0, ts=0)
    eng.max_ts_step = 5_000
    eng.set_marks(96.0, ts=5_000)  # 5,000 ahead: allowed now
    with pytest.raises(adl.InvalidInputError, match="max_ts_step = 5000"):
        eng.set_marks(96.0, ts=10_001)
    with pytest.raises(adl.InvalidInputError):
        eng.max_ts_step = -1
    # Without a drawdown trigger there is no limit unless one is set.
    free = adl.Engine(max_ts_step=None)
    free.load(book([(1, "long", 10.0, 100.0, 44.0)]))
    free.set_marks(96.0, ts=0)
    free.set_marks(96.0, ts=10**15)
    capped = adl.Engine(max_ts_step=10)
    capped.load(book([(1, "long", 10.0, 100.0, 44.0)]))
    capped.set_marks(96.0, ts=0)
    with pytest.raises(adl.InvalidInputError, match="ts"):
        capped.set_marks(96.0, ts=11)
