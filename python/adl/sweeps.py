"""Many scenario × policy simulations (Monte Carlo fund sizing) on all local cores, or on a
Ray cluster with the ``ray`` extra, as one Polars frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

import polars as pl

from adl.cascade import simulate
from adl.errors import InvalidInputError
from adl.scenario import crash_path, synthetic_book

BOOK_KEYS = ("positions", "seed", "symbols", "mark", "size_sigma", "median_notional", "leverage", "high_leverage_share",
             "entry_sigma", "hedged_share")
PATH_KEYS = ("start", "drop", "duration", "rebound", "steps", "dt", "noise")


def run_scenario(scenario: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """One simulation: the scenario's synthetic book and crash path (its ``seed`` drives
    both), any other keys passed to :func:`adl.simulate`. Returns the summary row with the
    scenario's keys in front."""
    s = dict(scenario)
    book_args = {k: s.pop(k) for k in BOOK_KEYS if k in s}
    n = int(book_args.pop("positions", 10_000))
    path_args = {k: s.pop(k) for k in PATH_KEYS if k in s}
    seed = int(book_args.get("seed", 0))
    symbols = book_args.get("symbols", ("BTC-PERP",))
    path_args.setdefault("start", book_args.get("mark", 100.0))   # the path starts at the book's mark
    book = synthetic_book(n, **book_args)
    path = crash_path(symbols=symbols, seed=seed, **path_args)
    s.setdefault("keep_fills", False)
    summary = simulate(book, path, policy=policy, **s).summary.row(0, named=True)  # type: ignore[arg-type]
    return {**{f"scenario_{k}": (str(v) if isinstance(v, (tuple, list)) else v) for k, v in scenario.items()}, **summary}


def sweep(
    scenarios: Sequence[Mapping[str, Any]],
    policies: Sequence[str] = ("bitmex", "size_pro_rata", "min_max_leverage"),
    *,
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> pl.DataFrame:
    """Runs every scenario under every policy and returns one row per run (the scenario's
    keys prefixed ``scenario_``, then :attr:`SimulationResult.summary`), in input order.

    A scenario is a dict: ``positions`` (book size), ``seed``, and any argument of
    :func:`adl.synthetic_book`, :func:`adl.crash_path` or :func:`adl.simulate` (for example
    ``drop``, ``steps``, ``insurance_fund``, ``horizon``). ``backend="local"`` uses a thread
    pool of ``workers`` (default: all cores; the simulation releases the GIL);
    ``backend="ray"`` sends each run to Ray (``pip install 'adl[ray]'``; it connects to a
    running cluster or starts a local one). ``progress=True`` shows a progress bar.

    Examples
    --------
    >>> import adl
    >>> runs = [{"positions": 500, "seed": s, "steps": 30, "duration": 20, "insurance_fund": f}
    ...         for s in (1, 2) for f in (0.0, 1e6)]
    >>> table = adl.sweep(runs, ["bitmex"])
    >>> table.select("scenario_seed", "scenario_insurance_fund", "policy").rows()[:2]
    [(1, 0.0, 'bitmex'), (1, 1000000.0, 'bitmex')]
    """
    if backend not in ("local", "ray"):
        raise InvalidInputError(f"backend: {backend!r} is not 'local' or 'ray'", "backend", None)
    jobs = [(i, dict(s), p) for i, s in enumerate(scenarios) for p in policies]
    rows: list[tuple[int, int, dict[str, Any]]] = []
    report = _progress(progress, len(jobs))
    if backend == "local":
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            futures = {pool.submit(run_scenario, s, p): (i, k) for k, (i, s, p) in enumerate(jobs)}
            for f in as_completed(futures):
                i, k = futures[f]
                rows.append((i, k, f.result()))
                report(len(rows))
    else:
        rows = _ray(jobs, report)
    report(-1)
    rows.sort(key=lambda r: (r[0], r[1]))
    return pl.DataFrame([r[2] for r in rows])


def _ray(jobs: list[tuple[int, dict[str, Any], str]], report: Callable[[int], None]) -> list[tuple[int, int, dict[str, Any]]]:
    try:
        import ray
    except ImportError as e:
        raise ImportError("backend='ray' needs ray: pip install 'adl[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)
    task = ray.remote(run_scenario)
    pending = {task.remote(s, p): (i, k) for k, (i, s, p) in enumerate(jobs)}
    rows: list[tuple[int, int, dict[str, Any]]] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i, k = pending.pop(ref)
            rows.append((i, k, ray.get(ref)))
            report(len(rows))
    return rows


def _progress(progress: bool | Callable[[int, int], None], total: int) -> Callable[[int], None]:
    """A callback taking runs done (-1 = finished)."""
    if callable(progress):
        user = progress
        return lambda done: user(done, total) if done >= 0 else None
    if not progress:
        return lambda done: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("sweeping", total=total)
    bar.start()

    def update(done: int) -> None:
        if done < 0:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update
