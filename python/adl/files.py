"""Reading the user's files: positions, prices, account wallets and marks from Parquet or
CSV (CSV with an explicit schema, so an id never becomes a float), and market parameters
from TOML. Errors name the file and the column, row or key."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from adl._io import ColumnMap, Market, column_map, mapped, marks_mapping
from adl.errors import AdlError, InvalidInputError, SchemaError, StorageError

# CSV dtypes of the columns the library knows; other columns are inferred.
CSV_SCHEMA: dict[str, pl.DataType] = {
    "account": pl.UInt64(), "symbol": pl.String(), "side": pl.String(), "qty": pl.Float64(),
    "entry_price": pl.Float64(), "margin": pl.Float64(), "margin_mode": pl.String(), "adl_cap": pl.Float64(),
    "ts": pl.Int64(), "mark": pl.Float64(), "cash": pl.Float64(), "wallet": pl.Float64(),
}


def _integer_ids(s: pl.Series) -> pl.Series:
    """A CSV ``account`` column (read as text) as UInt64 when every id is a plain integer
    (no sign, no leading zero), else as the strings it holds (UUIDs, names)."""
    ints = s.cast(pl.UInt64, strict=False)
    same = ints.cast(pl.String) == s
    return ints if ints.null_count() == s.null_count() and same.fill_null(True).all() else s


def _timestamps(s: pl.Series) -> pl.Series:
    """A CSV ``ts`` column (read as text) as Int64 when every value is an integer (your
    clock), else as datetimes (ISO 8601; a zone or offset in the text gives a zoned column),
    in ms."""
    ints = s.cast(pl.Int64, strict=False)
    if ints.null_count() == s.null_count():
        return ints
    try:
        return s.str.to_datetime(time_unit="ms")
    except pl.exceptions.PolarsError:
        row = int((ints.is_null() & s.is_not_null()).arg_max() or 0)
        raise SchemaError(f"{s.name}[row {row}]: {s[row]!r} is neither an integer nor an ISO 8601 datetime",
                          s.name, row) from None


def read_table(path: str | Path, what: str, required: Sequence[str], columns: ColumnMap = None) -> pl.DataFrame:
    """Reads a Parquet or CSV file (by extension), renames the columns ``columns`` maps
    (yours -> the library's) and checks them; errors name the file, the missing column, or
    the reason it cannot be read. CSV columns the library knows get its dtypes; ``account``
    is read as text and kept as integers only when every id is one."""
    p = Path(path)
    cols = column_map(columns)
    if not p.exists():
        raise StorageError(f"{what}: {p} does not exist", str(p))
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pl.read_parquet(p)
        else:
            header = pl.read_csv(p, n_rows=0).columns
            target = {c: cols.get(c, c) for c in header}
            schema = {**CSV_SCHEMA, "account": pl.String(), "ts": pl.String()}
            df = pl.read_csv(p, schema_overrides={c: schema[t] for c, t in target.items() if t in schema})
            for c, t in target.items():
                if t in ("account", "ts"):
                    df = df.with_columns(_integer_ids(df[c]) if t == "account" else _timestamps(df[c]))
    except AdlError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        raise StorageError(f"{what}: cannot read {p}: {e}", str(p)) from None
    renamed = mapped(cols, (what, df))[0]
    assert renamed is not None
    df = renamed
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(f"{what}: {p} lacks column(s) {missing}; required {list(required)}", missing[0], None)
    return df


def read_positions(path: str | Path, *, columns: ColumnMap = None) -> pl.DataFrame:
    """Positions from Parquet or CSV (``account, side, qty, entry_price, margin``, optional
    ``symbol``, ``margin_mode``, ``adl_cap``); ``columns`` maps your names to these."""
    return read_table(path, "positions", ("account", "side", "qty", "entry_price", "margin"), columns)


def read_prices(path: str | Path, *, columns: ColumnMap = None) -> pl.DataFrame:
    """A price path from Parquet or CSV (``ts, symbol, mark``; ``ts`` integers, or datetimes:
    Parquet Datetime, or ISO 8601 text in a CSV); ``columns`` maps your names to these.

    >>> import adl, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "ticks.csv"
    >>> _ = f.write_text("time,coin,px\\n2025-10-10T21:15:00.250Z,BTC,60000.5\\n")
    >>> adl.read_prices(f, columns={"time": "ts", "coin": "symbol", "px": "mark"}).dtypes
    [Datetime(time_unit='ms', time_zone='UTC'), String, Float64]
    """
    return read_table(path, "prices", ("ts", "symbol", "mark"), columns)


def read_accounts(path: str | Path, *, columns: ColumnMap = None) -> pl.DataFrame:
    """Account wallets from Parquet or CSV (``account`` and ``cash`` or ``wallet``)."""
    df = read_table(path, "accounts", ("account",), columns)
    if "cash" not in df.columns and "wallet" not in df.columns:
        raise SchemaError(f"accounts: {path} needs a cash or wallet column", "cash", None)
    return df


def read_marks(path: str | Path, *, columns: ColumnMap = None) -> dict[str, float]:
    """Marks per symbol from Parquet or CSV (``symbol, mark``; one row per symbol)."""
    marks: dict[str, float] = marks_mapping(read_table(path, "marks", ("symbol", "mark"), columns))
    return marks


ENGINE_KEYS = ("cash_decimals", "qty_decimals", "price_decimals", "maintenance_rate", "trigger", "trigger_min_balance", "adl_price",
               "seed", "lights")
"""Keys of a markets file's ``[engine]`` table: engine-wide settings for :func:`adl.simulate`."""


def read_markets(path: str | Path) -> tuple[dict[str, Market], dict[str, Any]]:
    """Market parameters from TOML: one ``[markets.SYMBOL]`` table per market with the fields
    of :class:`adl.Market` (grids, tiers, fees, fund pool), and an optional ``[engine]`` table
    (``ENGINE_KEYS``). Returns (markets by symbol, engine settings).

    >>> import adl.files, tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.toml"
    >>> _ = f.write_text('[engine]\\ntrigger = "drawdown"\\n[markets.BTC]\\nqty_decimals = 3\\nprice_decimals = 1\\n'
    ...                  'tiers = [[0, 0.004], [50000, 0.005, 50.0]]\\n')
    >>> markets, engine = adl.files.read_markets(f)
    >>> markets["BTC"].tiers[1], engine
    ([50000, 0.005, 50.0], {'trigger': 'drawdown'})
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StorageError(f"markets: {p} does not exist", str(p)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise StorageError(f"markets: cannot read {p}: {e}", str(p)) from None
    unknown = sorted(set(doc) - {"engine", "markets"})
    if unknown:
        raise InvalidInputError(f"markets: {p}: unknown table(s) {unknown}; expected [engine] and [markets.SYMBOL]", unknown[0], None)
    engine = doc.get("engine", {})
    bad = sorted(set(engine) - set(ENGINE_KEYS))
    if bad:
        raise InvalidInputError(f"markets: {p}: [engine] has unknown key(s) {bad}; expected {list(ENGINE_KEYS)}", bad[0], None)
    fields = set(Market.__dataclass_fields__)
    markets = {}
    for symbol, spec in doc.get("markets", {}).items():
        if not isinstance(spec, dict):
            raise InvalidInputError(f"markets: {p}: markets.{symbol} must be a table", symbol, None)
        bad = sorted(set(spec) - fields)
        if bad:
            raise InvalidInputError(f"markets: {p}: [markets.{symbol}] has unknown key(s) {bad}; expected {sorted(fields)}",
                                    bad[0], None)
        markets[symbol] = Market(**spec)
    return markets, dict(engine)
