"""``sentiflow console [URL]``: the live console in a terminal (rich), from the same JSON
frames as the web page (``/console/stream``, Server-Sent Events).

It draws the node header (state, throughput, end-to-end latency, restarts, dead letters, loop
lag), a throughput sparkline, the confidence distribution, and the supervision tree with each
actor's mailbox, rate, latency percentiles, batch sizes, restarts and last error. It reconnects
by itself when the node restarts (what systemd does after a failure), and ``--once`` prints a
single frame (scripts, CI logs, a quick look over ssh).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import click
import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

Frame = dict[str, Any]

_SPARK = "▁▂▃▄▅▆▇█"
_STATE_STYLE = {"running": "green", "restarting": "yellow", "starting": "yellow",
                "stopping": "yellow", "stopped": "red"}


def _num(x: object, digits: int = 1) -> str:
    if x is None or isinstance(x, str):
        return "–" if x is None else str(x)
    if isinstance(x, int | float):
        return f"{x:,.{digits}f}" if digits else f"{x:,.0f}"
    return str(x)


def sparkline(values: Sequence[float | None], width: int = 60) -> str:
    """The last ``width`` values as block characters scaled to their max (gaps as spaces)."""
    tail = list(values)[-width:]
    top = max((v for v in tail if v is not None), default=0.0)
    if top <= 0:
        return "".join(" " if v is None else _SPARK[0] for v in tail)
    return "".join(" " if v is None else _SPARK[min(7, int(v / top * 7.999))] for v in tail)


def confidence_bars(conf: Frame | None, width: int = 30) -> Table:
    """One bar per 0.05 confidence bin (since start), highest confidence on top."""
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column()
    table.add_column(justify="right", style="dim")
    if not conf:
        table.add_row("", Text("no results written yet", style="dim"), "")
        return table
    total = conf["total"]
    count = sum(total) or 1
    top = max(total) or 1
    lower = 0.0
    rows = []
    for bound, n in zip(conf["bounds"], total, strict=False):
        bar = "█" * round(width * n / top)
        rows.append((f"{lower:.2f}–{bound:.2f}", Text(bar, style="cyan"),
                     f"{100 * n / count:.1f}%"))
        lower = bound
    first = next((i for i, n in enumerate(total) if n), 0)  # empty low bins: not shown
    for row in reversed(rows[first:]):
        table.add_row(*row)
    return table


def tree_table(frame: Frame, width: int = 160) -> Table:
    """The tree; below 120 columns the class and batch columns are left out."""
    compact = width < 120
    table = Table(title="supervision tree", title_justify="left", expand=True,
                  header_style="bold dim")
    right = ("mailbox", "msgs/s", "p50/p95/p99 ms", "batch mean/p95", "restarts")
    shown = [n for n in ("actor", "class / strategy", "state", *right, "last error")
             if not (compact and n in ("class / strategy", "batch mean/p95"))]
    for name in shown:
        table.add_column(name, justify="right" if name in right else "left",
                         no_wrap=name != "last error", overflow="fold" if name == "last error"
                         else "ellipsis", min_width=len(name) if name != "last error" else 10)
    now = frame.get("at") or time.time()
    for a in frame.get("actors", []):
        name = "  " * a["depth"] + a["name"]
        state = Text(a["state"], style=_STATE_STYLE.get(a["state"], ""))
        error = ""
        if a.get("last_error"):
            e = a["last_error"]
            error = f"{e['type']}: {e['message']} ({int(max(0, now - e['at']))}s ago)"
        if a["kind"] == "supervisor":
            cells: dict[str, str | Text] = {
                "actor": Text(name, style="bold"),
                "class / strategy": f"{a['class']} ({a['max_restarts']}/{a['period_s']:g}s)",
                "state": state, "restarts": str(a["restarts"]),
                "last error": Text(error, style="red")}
            table.add_row(*(cells.get(c, "") for c in shown))
            continue
        lat = a.get("latency_ms") or {}
        depth, cap = a["mailbox_depth"], a["mailbox_capacity"]
        fill = depth / cap if cap else 0.0
        style = "red" if fill > 0.8 else "yellow" if fill > 0.4 else ""
        batch = a.get("batch")
        cells = {
            "actor": name, "class / strategy": a["class"], "state": state,
            "mailbox": Text(f"{depth}/{cap}", style=style), "msgs/s": _num(a.get("rate")),
            "p50/p95/p99 ms": f"{_num(lat.get('p50'), 2)}/{_num(lat.get('p95'), 2)}/"
                              f"{_num(lat.get('p99'), 2)}",
            "batch mean/p95": f"{_num(batch['mean'])}/{_num(batch['p95'], 0)}" if batch
            else "",
            "restarts": str(a["restarts"]), "last error": Text(error, style="red")}
        table.add_row(*(cells.get(c, "") for c in shown))
    return table


def render(frame: Frame, throughput_history: Sequence[float | None] = (),
           status: str = "live", width: int = 160) -> RenderableType:
    """The whole screen for one frame (pure: tested by rendering to a recording Console)."""
    node, totals = frame.get("node", {}), frame.get("totals", {})
    lat = totals.get("latency_ms") or {}
    state = "draining" if node.get("draining") else "ready" if node.get("ready") else "not ready"
    head = Table.grid(padding=(0, 3))
    for _ in range(4):
        head.add_column()
    head.add_row(
        Text.assemble(("state ", "dim"), (state, "green" if state == "ready" else "yellow")),
        Text.assemble(("throughput ", "dim"), f"{_num(totals.get('throughput'))} posts/s"),
        Text.assemble(("e2e p50/p95/p99 ", "dim"),
                      f"{_num(lat.get('p50'))}/{_num(lat.get('p95'))}/{_num(lat.get('p99'))} ms"),
        Text.assemble(("written ", "dim"), _num(totals.get("written"), 0)))
    head.add_row(
        Text.assemble(("restarts ", "dim"), _num(totals.get("restarts"), 0)),
        Text.assemble(("dead letters ", "dim"), _num(totals.get("dead_letters"), 0)),
        Text.assemble(("loop lag max ", "dim"), f"{_num(totals.get('loop_lag_max_ms'), 2)} ms"),
        Text.assemble(("uptime ", "dim"), f"{_num(node.get('uptime_s'), 0)} s"))
    title = (f"sentiflow {node.get('name', '')} · {node.get('model', '')} "
             f"{node.get('model_version', '')} · [{status}]")
    charts = Table.grid(padding=(0, 4), expand=True)
    charts.add_column(ratio=1)
    charts.add_column(ratio=1)
    charts.add_row(
        Group(Text("throughput (posts/s)", style="dim"),
              Text(sparkline(throughput_history) or "–", style="blue")),
        Group(Text("confidence (since start)", style="dim"),
              confidence_bars(frame.get("confidence"))))
    return Group(Panel(head, title=title, title_align="left"), charts, tree_table(frame, width))


def stream_frames(base_url: str, client: httpx.Client) -> Iterator[tuple[str, Frame]]:
    """``(event, data)`` pairs from ``/console/stream`` until the server ends it."""
    event = "message"
    with client.stream("GET", f"{base_url}/console/stream", timeout=httpx.Timeout(
            10.0, read=60.0)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                yield event, json.loads(line[5:])
            elif not line:
                event = "message"


@click.command("console")
@click.argument("url", default="http://127.0.0.1:8080")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
def console(url: str, once: bool) -> None:
    """Live terminal view of a running node's actor tree (reads URL/console/stream)."""
    base = url.rstrip("/")
    out = Console()
    with httpx.Client() as client:
        if once:
            try:
                response = client.get(f"{base}/console/frame.json", timeout=10.0)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise click.ClickException(f"cannot read {base}/console/frame.json: {exc}"
                                           ) from None
            out.print(render(response.json(), status="snapshot", width=out.width))
            return
        history: deque[float | None] = deque(maxlen=120)
        last: Frame | None = None
        with Live(Text(f"connecting to {base} …"), console=out, refresh_per_second=4,
                  screen=False) as live:
            while True:
                try:
                    for event, data in stream_frames(base, client):
                        if event == "hello":
                            history.extend(p["throughput"] for p in data.get("history", []))
                        elif event == "frame":
                            last = data
                            history.append(data["totals"]["throughput"])
                            live.update(render(data, history, width=out.width))
                        elif event == "bye" and last is not None:
                            live.update(render(last, history, "node draining", out.width))
                except (httpx.HTTPError, json.JSONDecodeError) as exc:
                    if last is None:
                        live.update(Text(f"cannot reach {base}: {exc}; retrying …",
                                         style="yellow"))
                    else:
                        live.update(render(last, history, "reconnecting", out.width))
                time.sleep(1.0)
