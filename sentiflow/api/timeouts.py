"""The request body's and the response's timeouts, without a task per request.

Why: Quart guards reading the body (``BODY_TIMEOUT``) and sending the response
(``RESPONSE_TIMEOUT``) with ``asyncio.wait_for``, which on Python 3.11 runs the guarded
awaitable as a task of its own: two tasks per request, and each adds two event-loop iterations
to the request's critical path (the task is scheduled, then its result wakes the caller). Under
load an iteration waits behind every callback that became ready meanwhile: on the node at 833
requests/s the p50 was 10.5 ms without those tasks against 12.8 ms with them, p95 17.4 vs
20.3 ms (medians of 5 interleaved rounds, bench/bench_api.py's ``node-quart-timeouts`` peer,
``api_timeouts.json``). Here instead:

* the body is read under :func:`asyncio.timeout` (a timer handle, no task; Quart runs on
  asyncio only), and a body that does not arrive within ``api.body_timeout_s`` is a 408;
* a response held in memory and no larger than :data:`UNGUARDED_RESPONSE_BYTES` is sent with no
  timeout: uvicorn's and Hypercorn's ``send`` only wait when the connection's write buffer is
  past its high-water mark (64 KiB), which one such body cannot cross on its own. Streams and
  larger bodies keep Quart's ``RESPONSE_TIMEOUT`` (a client that stops reading cannot hold them
  for ever).
"""

from __future__ import annotations

import asyncio
from typing import Final

from quart import Request, Response
from quart.wrappers.response import DataBody

#: Largest in-memory response body sent without Quart's response timeout (see module doc).
UNGUARDED_RESPONSE_BYTES: Final = 32 * 1024


class BodyTimeoutError(Exception):
    """The request's body did not arrive within the allowed time."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s")
        self.timeout_s = timeout_s


async def read_body(request: Request, timeout_s: float) -> bytes:
    """The whole body of ``request``; :class:`BodyTimeoutError` after ``timeout_s``. Expects
    the app's ``BODY_TIMEOUT`` to be None (this is the timeout)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.get_data(cache=True, as_text=False, parse_form_data=False)
    except TimeoutError:
        raise BodyTimeoutError(timeout_s) from None


def drop_small_response_timeout(response: Response) -> None:
    """Send ``response`` without Quart's response timeout when its body is in memory and small
    (see module doc); a timeout the handler chose (``response.timeout``) is left alone."""
    body = response.response
    if (response.timeout is Ellipsis and isinstance(body, DataBody)
            and len(body.data) <= UNGUARDED_RESPONSE_BYTES):
        response.timeout = None
