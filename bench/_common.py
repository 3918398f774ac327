"""Helpers shared by the benchmarks: percentiles, a printed table and a JSON record.

Every benchmark prints a table for people and writes the same figures as JSON under
``bench/results/`` so that the README's performance section can cite a file.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of ``values``; NaN for an empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def print_table(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Print ``rows`` as an aligned text table; the columns are every key of any row, in the
    order first seen (a row without a key shows an empty cell)."""
    if not rows:
        print(f"{title}: no rows")
        return
    headers = list(dict.fromkeys(key for row in rows for key in row))

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    cells = [[fmt(row.get(h, "")) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def write_results(name: str, payload: Mapping[str, Any],
                  directory: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` plus machine facts and a timestamp to ``bench/results/<name>.json``
    (``directory``: elsewhere, e.g. a test's temp dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    record = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), **payload}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server process the benchmark starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
