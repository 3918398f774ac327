"""A small OpenAI-compatible chat-completions server for the LLM tier's tests and benchmark.

A real HTTP server (Quart on Hypercorn, a free loopback port) so that the real ``openai`` client
is exercised end to end, headers and errors included. Deterministic: each post of the prompt's
JSON is labelled by a tiny lexicon (the same words as ``tests.node.backends``), confidence 0.9.
Controls (all on :class:`FakeLLM`, changeable while it runs):

* ``latency_s``: added to every answer; ``rpm_limit``: a server-side requests/min bucket (two
  seconds of burst) advertised on every answer as OpenAI does (``x-ratelimit-limit-requests``
  per minute, ``-remaining-requests`` left now, ``-reset-requests`` until the bucket is full
  again), 429 + ``Retry-After`` when exceeded;
* ``script``: the next requests' behaviour, one entry each: ``"ok"``, ``"429"`` (with
  ``retry_after_s``), ``"500"``, ``"malformed"`` (content that is not JSON), ``"bad_label"``
  (a label outside the set), ``"missing"`` (one post unanswered), ``"slow"`` (sleeps
  ``slow_s``), ``"not_json"`` (a body that is not a chat completion),
  ``"billed_no_message"`` (a 200 whose choice has no message, as some servers send for a
  filtered answer, with a ``usage``: billed, counted in the token counters);
* counters: requests, posts judged, tokens billed (``usage`` is derived from the text sizes),
  ``in_flight`` / ``max_in_flight`` (requests being handled at once, and the most ever).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

from tests.net import free_port
from tests.node.backends import NEGATIVE, POSITIVE


def label_of(text: str) -> str:
    lower = text.lower()
    pos = sum(w in lower for w in POSITIVE)
    neg = sum(w in lower for w in NEGATIVE)
    return "positive" if pos > neg else "negative" if neg > pos else "neutral"


@dataclass
class FakeLLM:
    latency_s: float = 0.0
    rpm_limit: float | None = None
    retry_after_s: float = 0.2
    slow_s: float = 30.0
    confidence: float = 0.9
    script: deque[str] = field(default_factory=deque)
    requests: int = 0
    answered: int = 0
    rate_limited: int = 0
    posts: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _tokens: float = 0.0
    _updated: float = 0.0
    base_url: str = ""

    def _capacity(self) -> float:
        assert self.rpm_limit is not None
        return max(1.0, self.rpm_limit / 60 * 2)  # two seconds of burst, like the client's

    def _refill(self) -> None:
        assert self.rpm_limit is not None
        now = time.monotonic()
        if self._updated == 0.0:
            self._tokens, self._updated = self._capacity(), now
        self._tokens = min(self._capacity(),
                           self._tokens + (now - self._updated) * self.rpm_limit / 60)
        self._updated = now

    def _rate_ok(self) -> tuple[bool, float]:
        if self.rpm_limit is None:
            return True, 0.0
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True, 0.0
        return False, (1 - self._tokens) / (self.rpm_limit / 60)

    def _headers(self) -> dict[str, str]:
        if self.rpm_limit is None:
            return {}
        self._refill()  # the state now, as the answer leaves
        full_in = max(0.0, self._capacity() - self._tokens) / (self.rpm_limit / 60)
        return {"x-ratelimit-limit-requests": str(int(self.rpm_limit)),
                "x-ratelimit-remaining-requests": str(max(0, int(self._tokens))),
                "x-ratelimit-reset-requests": f"{full_in:.3f}s"}

    async def handle(self, body: dict[str, Any]) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(body)
        finally:
            self.in_flight -= 1

    async def _answer(self, body: dict[str, Any]) -> Response:
        self.requests += 1
        self.bodies.append(body)
        action = self.script.popleft() if self.script else "ok"
        ok, wait = self._rate_ok()
        if action == "429" or not ok:
            self.rate_limited += 1
            retry = self.retry_after_s if action == "429" else wait
            headers = {"retry-after": f"{retry:.3f}", **self._headers(),
                       "x-ratelimit-remaining-requests": "0"}
            return _json({"error": {"message": "Rate limit reached", "type": "requests",
                                    "code": "rate_limit_exceeded"}}, 429, headers)
        await anyio.sleep(self.slow_s if action == "slow" else self.latency_s)
        if action == "500":
            return _json({"error": {"message": "boom", "type": "server_error"}}, 500)
        if action == "not_json":
            return Response("<html>bad gateway</html>", status=200,
                            content_type="application/json")
        user = json.loads(body["messages"][-1]["content"])
        posts = user["posts"]
        results = []
        for post in posts:
            item: dict[str, Any] = {"id": post["id"], "sentiment": label_of(post["text"]),
                                    "confidence": self.confidence}
            if "aspects" in post:
                names = post["aspects"] or ["overall"]
                item["aspects"] = [{"aspect": n, "sentiment": label_of(post["text"]),
                                    "confidence": self.confidence} for n in names]
            results.append(item)
        if action == "bad_label":
            results[0]["sentiment"] = "ecstatic"
        if action == "missing":
            results = results[1:]
        content = "{not json" if action == "malformed" else json.dumps({"results": results})
        # ~4 characters per token (English BPE), the schema included as OpenAI bills it.
        schema = len(json.dumps(body.get("response_format", {})))
        prompt = math.ceil((sum(len(m["content"]) for m in body["messages"]) + schema) / 4)
        completion = math.ceil(len(content) / 4)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        if action == "billed_no_message":
            return _json({"id": f"chatcmpl-{self.requests}", "object": "chat.completion",
                          "choices": [{"index": 0, "finish_reason": "content_filter",
                                       "message": None}], "usage": usage}, 200)
        self.answered += 1
        self.posts.extend(p["text"] for p in posts)
        return _json({
            "id": f"chatcmpl-{self.requests}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage,
        }, 200, self._headers())


def _json(payload: dict[str, Any], status: int, headers: dict[str, str] | None = None
          ) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json",
                    headers=headers or {})


def make_app(fake: FakeLLM) -> Quart:
    app = Quart("fake-openai")

    @app.post("/v1/chat/completions")
    async def completions() -> Response:
        body = await request.get_json(force=True)
        return await fake.handle(body)

    return app


@asynccontextmanager
async def running_fake(fake: FakeLLM | None = None) -> AsyncIterator[FakeLLM]:
    """Serve ``fake`` on a free loopback port (asyncio only: Hypercorn's asyncio worker)."""
    fake = fake or FakeLLM()
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.1
    stop = anyio.Event()
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(serve, make_app(fake), config, shutdown_trigger=stop.wait))
        for _ in range(200):  # wait until it accepts connections
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.01)
                continue
            await stream.aclose()
            break
        try:
            yield fake
        finally:
            stop.set()
