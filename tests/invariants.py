"""Invariants the Python property tests check after every liquidation (docs/model.md §2)."""

from __future__ import annotations

import polars as pl

import adl


def isolated_cash(eng: adl.Engine) -> dict[int, float]:
    """Free cash per account (call before the liquidation)."""
    return dict(eng.accounts().select("account", "cash").iter_rows())


def check_no_isolated_counterparty_paid(before: dict[int, float], eng: adl.Engine, res: adl.LiquidationResult,
                                        cross_accounts: frozenset[int] = frozenset()) -> None:
    """No one is made insolvent by ADL: an isolated counterparty receives cash >= 0 from its
    fills, so its free cash never falls (accounts liquidated in the call and cross accounts,
    whose wallet absorbs realised losses and is checked through TNC in Rust, are left out)."""
    after = isolated_cash(eng)
    liquidated = set(res.fills["bankrupt_account"].to_list())
    hit = set(res.fills.filter(pl.col("kind") == "adl")["account"].to_list())
    for account in hit - liquidated - cross_accounts:
        assert after.get(account, 0.0) >= before.get(account, 0.0) - 1e-9, (account, before.get(account), after.get(account))
