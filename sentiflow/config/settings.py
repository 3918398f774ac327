"""Typed node settings: one TOML file plus ``SENTIFLOW_*`` environment overrides.

Precedence, highest first: environment (``SENTIFLOW_<SECTION>__<KEY>``, e.g.
``SENTIFLOW_ROUTER__THRESHOLD=0.8``; lists and dicts as JSON) > the TOML file (``--config`` or
``SENTIFLOW_CONFIG``) > the defaults below. ``SENTIFLOW_HOME`` and ``SENTIFLOW_DATA_DIR`` are
accepted as aliases of ``node.home`` / ``node.data_dir`` so that :mod:`sentiflow.config.paths` and
the settings agree.

Everything is validated once, at start, by :func:`load_settings`; any problem becomes a
:class:`~sentiflow.config.errors.ConfigError` whose lines name the key (``router.threshold: must
be in [0, 1]``). Unknown keys are rejected (a typo must not silently fall back to a default).
Settings objects are frozen: the running node reads them, never mutates them.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import socket
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from sentiflow.config.errors import ConfigError
from sentiflow.config.paths import REPO_ROOT

ENV_PREFIX = "SENTIFLOW_"
ENV_NESTED_DELIMITER = "__"
#: Environment variable naming the TOML file when ``--config`` is not given.
CONFIG_ENV_VAR = "SENTIFLOW_CONFIG"
#: Short aliases kept for :mod:`sentiflow.config.paths` compatibility.
ENV_ALIASES: Mapping[str, str] = {
    "SENTIFLOW_HOME": "SENTIFLOW_NODE__HOME",
    "SENTIFLOW_DATA_DIR": "SENTIFLOW_NODE__DATA_DIR",
}
MASK = "**********"


def _unit_interval(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError("must be in [0, 1]")
    return value


Probability = Annotated[float, AfterValidator(_unit_interval)]
"""A float in [0, 1] (thresholds, confidences)."""

PositiveInt = Annotated[int, Field(ge=1)]
FiniteNonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FinitePositive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
MailboxSize = Annotated[int, Field(ge=1, le=10_000_000)]

_LANG_RE = re.compile(r"^[a-z]{2}$")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


class _Section(BaseModel):
    """Base of every settings section: unknown keys rejected, values frozen after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSettings(_Section):
    """Identity and filesystem locations of this node."""

    name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    #: Trained models, embedded stores and other state (``var/`` in the repo by default).
    home: Path = REPO_ROOT / "var"
    #: Labelled data, read in place (``../shared/data`` next to the repo by default).
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    #: asyncio event loop of the process: ``auto`` (uvloop when installed), ``uvloop``,
    #: ``asyncio`` (the standard selector loop; see sentiflow/ops/eventloop.py for why).
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: Once the node is ready, move everything allocated so far (modules, the model, the
    #: tree) out of the garbage collector's reach (``gc.freeze``): full collections then scan
    #: only what requests allocate. Without it a full collection of the ~240,000 startup
    #: objects paused the loop for up to 194 ms under load (bench/bench_api.py).
    gc_freeze: bool = True

    @field_validator("event_loop")
    @classmethod
    def _loop_installed(cls, name: str) -> str:
        if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError("uvloop is not installed (use 'auto' or 'asyncio')")
        return name


class ApiSettings(_Section):
    """The REST API: where it listens, what it accepts, who may call it."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: The ASGI server (sentiflow/api/servers.py): uvicorn (httptools parser, 26-34 % less CPU
    #: per request here) or Hypercorn (pure-Python h11; HTTP/2).
    server: Literal["uvicorn", "hypercorn"] = "uvicorn"
    max_text_chars: PositiveInt = 5000
    max_batch_items: PositiveInt = 1000
    #: Largest request body accepted; bigger bodies get 413 before parsing.
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    #: Accepted API keys; empty means the API is open (no 401s).
    api_keys: list[SecretStr] = Field(default_factory=list)
    #: Token-bucket refill per API key (requests/second); 0 disables rate limiting.
    rate_limit_per_second: FiniteNonNegative = 100.0
    #: Token-bucket capacity per API key (requests allowed in a burst).
    rate_limit_burst: PositiveInt = 200
    #: How long a request's body may take to arrive once its headers have; past it the API
    #: answers 408 (a client trickling a body cannot hold a request open for ever).
    body_timeout_s: FinitePositive = 30.0
    #: Upper bound on one classify request end to end; past it the API answers 503.
    request_timeout_s: FinitePositive = 10.0
    #: How long a request may wait for mailbox space before the API answers 503.
    enqueue_timeout_s: FiniteNonNegative = 0.1
    #: Value of the ``Retry-After`` header on 503 / 429 answers.
    retry_after_s: PositiveInt = 1

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            if len(key.get_secret_value().strip()) < 8:
                raise ValueError("every API key must have at least 8 non-blank characters")
        return keys


class WebhookSettings(_Section):
    """Delivery of batch results to caller-supplied URLs (signed, retried, SSRF-guarded)."""

    #: HMAC-SHA256 key for ``X-Sentiflow-Signature``; webhooks are refused while unset.
    secret: SecretStr | None = None
    #: Hosts (names or IP literals) allowed even if they resolve to private/loopback addresses.
    allow_hosts: list[str] = Field(default_factory=list)
    #: Networks (CIDR) allowed even if private, e.g. ``["10.20.0.0/16"]``.
    allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    #: Results per POST.
    chunk_size: int = Field(default=100, ge=1, le=10_000)
    #: Attempts per chunk (first try included) before giving up.
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_initial_s: FinitePositive = 0.5
    backoff_max_s: FinitePositive = 60.0
    #: Per-attempt HTTP timeout (connect + read).
    timeout_s: FinitePositive = 10.0

    @field_validator("allow_hosts")
    @classmethod
    def _normalise_hosts(cls, hosts: list[str]) -> list[str]:
        out = [h.strip().lower().strip("[]") for h in hosts]
        if any(not h for h in out):
            raise ValueError("host names must not be empty")
        return out

    @model_validator(mode="after")
    def _backoff_order(self) -> WebhookSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class ClassifierSettings(_Section):
    """The micro-batching fast-tier classifier (one actor per device)."""

    #: ``"default"`` (the embedded n-gram model), ``"e5"`` (the embedded e5 tier: more
    #: accurate, ~100x slower; sentiflow/models/e5.py), a Hugging Face checkpoint id / local
    #: path, or ``"python:package.module:factory"`` for a custom SentimentBackend.
    model: str = Field(default="default", min_length=1)
    #: ``"auto"`` (each visible CUDA device, else the CPU) or a list such as ``["cuda:0"]``.
    devices: Literal["auto"] | list[str] = "auto"
    max_batch: int = Field(default=64, ge=1, le=4096)
    #: 0 = natural batching: flush whenever the mailbox runs dry, so a batch is whatever queued
    #: during the previous one. Batches are formed upstream, by the language stage's linger
    #: (``language.max_wait_ms``); a GPU may want a few ms more here to fill larger batches.
    max_wait_ms: float = Field(default=0.0, ge=0, le=10_000, allow_inf_nan=False)
    #: A batch of a lightweight model (the embedded n-gram model) runs on the event loop when
    #: it is predicted to take at most this long, instead of paying a worker thread's round
    #: trip through a busy loop (sentiflow/runtime/offload.py); 0 = always a worker thread.
    #: Other models (e5, Hugging Face) always run in a worker thread. 5 ms, not less: the
    #: n-gram model holds the GIL for most of a batch, so a thread frees little of the loop
    #: and its round trip costs more than that; with 1 ms, a 4-post batch that took 1.1-1.5 ms
    #: on a slow stretch of this VM went to threads and the node spent 13-16 % more CPU a request
    #: (bench/bench_api.py, the ``node-1ms`` peer).
    inline_budget_ms: float = Field(default=5.0, ge=0, le=100, allow_inf_nan=False)
    mailbox_size: MailboxSize = 4096
    # -- Hugging Face checkpoints only (sentiflow/models/hf_loading.py) --
    #: Tokens kept per text; longer texts are truncated (capped by the checkpoint's own limit).
    max_length: int = Field(default=256, ge=8, le=8192)
    #: ``auto``: fp16 on CUDA, fp32 on the CPU.
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    #: Checkpoint label name -> sentiment, for labels that config.id2label does not name.
    label_map: dict[str, Literal["negative", "neutral", "positive"]] = Field(default_factory=dict)
    #: ``auto``: fit temperature / vector scaling on the labelled valid splits at the first
    #: start and cache it under ``<node.home>/calibration``; ``none``: raw softmax; or the
    #: path of a calibrator JSON file.
    calibration: Literal["auto", "none"] | Path = "auto"
    #: Valid rows the ``auto`` calibration is fitted on (a deterministic sample).
    calibration_rows: int = Field(default=3000, ge=50, le=1_000_000)

    @field_validator("devices")
    @classmethod
    def _known_devices(cls, devices: Literal["auto"] | list[str]) -> Literal["auto"] | list[str]:
        if devices == "auto":
            return devices
        if not devices:
            raise ValueError('must be "auto" or a non-empty list of devices')
        for device in devices:
            if not _DEVICE_RE.match(device):
                raise ValueError(f'unknown device {device!r} (use "cpu", "cuda", "cuda:N")')
        return devices


class RouterSettings(_Section):
    """Confidence routing: below the threshold a post goes to the LLM / review tier."""

    threshold: Probability = 0.75
    #: Per-language overrides, ISO-639-1 code -> threshold.
    per_language: dict[str, Probability] = Field(default_factory=dict)
    mailbox_size: MailboxSize = 4096

    @field_validator("per_language")
    @classmethod
    def _language_codes(cls, table: dict[str, float]) -> dict[str, float]:
        for code in table:
            if not _LANG_RE.match(code):
                raise ValueError(f"{code!r} is not a lower-case ISO-639-1 code")
        return table

    def threshold_for(self, language: str) -> float:
        """The threshold that applies to ``language`` (its override, else the global one)."""
        return self.per_language.get(language, self.threshold)


class LanguageSettings(_Section):
    """The language-detector pool."""

    pool_size: int = Field(default=2, ge=1, le=256)
    mailbox_size: MailboxSize = 4096
    #: Linger: a detector holds a batch for up to this long after its first post (or until it
    #: holds ``classifier.max_batch`` posts) so that posts arriving meanwhile share the fixed
    #: cost of every later stage (sentiflow/actors/language.py); 0 = natural batching. 8 ms:
    #: at 833 requests/s batches of ~11-13 posts instead of ~7 and ~10 % less CPU than 4 ms
    #: (bench/bench_api.py's rounds, peer ``node-4ms``), for 4 ms more latency at light load.
    max_wait_ms: float = Field(default=8.0, ge=0, le=10_000, allow_inf_nan=False)


class StorageSettings(_Section):
    """Where results and trends go; the URL scheme picks the backend.

    Relative ``sqlite:///`` / ``chdb:///`` paths are resolved against ``node.home`` at load time,
    so after :func:`load_settings` the URLs are absolute.
    """

    results_url: str = "sqlite:///results.db"
    trends_url: str = "chdb:///trends"
    #: SQLite durability: FULL fsyncs every commit (survives power loss), NORMAL only
    #: survives process crashes. See docs/node-foundations.md.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    #: A SQLite result write runs on the event loop while writes measured there take at most
    #: this long (a commit without a slow fsync), else in the writer thread; one that overruns
    #: sends writes to the thread, and one write every 5 s is measured on the loop again
    #: (sentiflow/runtime/offload.py). 0 = always the thread. 5 ms: a FULL commit's fsync
    #: took 0.7-1.9 ms on this VM, and a budget at 1 ms sent every other write to the thread.
    sqlite_inline_budget_ms: float = Field(default=5.0, ge=0, le=100, allow_inf_nan=False)
    #: The result writer flushes at this many results or after ``writer_max_wait_ms``
    #: (0 = natural batching, as for the classifier: every write carries what queued during
    #: the previous one, and a lone result is written at once).
    writer_max_batch: int = Field(default=512, ge=1, le=100_000)
    writer_max_wait_ms: float = Field(default=0.0, ge=0, le=60_000, allow_inf_nan=False)
    writer_mailbox_size: MailboxSize = 8192
    #: PostgreSQL result store (``postgresql://user@host:5432/db`` URL; a password is better
    #: given as PGPASSWORD or ~/.pgpass): pool size, and how long connecting and one statement
    #: may take before the call fails with StorageError. See docs/storage.md.
    pg_pool_size: int = Field(default=10, ge=1, le=1000)
    pg_connect_timeout_s: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    pg_command_timeout_s: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)

    @field_validator("results_url")
    @classmethod
    def _results_scheme(cls, url: str) -> str:
        url = _check_scheme(url, ("sqlite", "postgresql", "postgres"))
        if not url.startswith("sqlite"):
            from sentiflow.stores.pg_url import check_postgres_url

            check_postgres_url(url)
        return url

    @field_validator("trends_url")
    @classmethod
    def _trends_scheme(cls, url: str) -> str:
        return _check_scheme(url, ("chdb", "clickhouse", "http", "https"))


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class OpsSettings(_Section):
    """Operations: graceful drain, systemd watchdog, the live console (docs/operations.md)."""

    #: SIGTERM: stop accepting, finish in-flight requests and drain the tree within this many
    #: seconds (the systemd unit's TimeoutStopSec must be larger).
    drain_timeout_s: FinitePositive = 30.0
    #: Heartbeat period; 0 = half the unit's WatchdogSec (``$WATCHDOG_USEC``), else 1 s.
    heartbeat_interval_s: FiniteNonNegative = 0.0
    #: Serve ``/console`` and its JSON stream (same exposure as ``/metrics``).
    console_enabled: bool = True
    #: Seconds between console frames on the live stream.
    console_interval_s: float = Field(default=1.0, ge=0.1, le=60, allow_inf_nan=False)
    #: Frames of history kept for the console charts.
    console_history: int = Field(default=300, ge=10, le=10_000)


class DriftSettings(_Section):
    """Drift watching, the nightly LLM audit, retraining and hot swap (docs/drift.md)."""

    enabled: bool = True
    #: Days of history (same model version, no alert) that form the reference distribution.
    reference_days: int = Field(default=7, ge=1, le=365)
    #: Equal-width confidence bins over [1/3, 1].
    bins: int = Field(default=10, ge=2, le=100)
    #: drift_score (PSI) above this raises an alert.
    drift_threshold: FinitePositive = 0.10
    #: Relative growth of the low-confidence share that triggers retraining (0.15 = +15 %).
    low_confidence_growth: FinitePositive = 0.15
    #: No verdict on a day (or reference) with fewer posts than this.
    min_samples: PositiveInt = 200
    #: How often the open day's snapshot is written (it survives a restart up to this lag).
    checkpoint_s: FinitePositive = 60.0
    mailbox_size: MailboxSize = 1024
    #: PagerDuty Events v2 endpoint (``https://events.pagerduty.com/v2/enqueue``); unset = alerts
    #: go to the log and the ``drift_alerts`` metric only.
    alert_webhook_url: str | None = None
    #: PagerDuty integration (routing) key; required with ``alert_webhook_url``.
    pagerduty_routing_key: SecretStr | None = None
    alert_timeout_s: FinitePositive = 10.0
    #: Nightly audit (needs the LLM tier configured): time of day (UTC, ``HH:MM``) it audits
    #: the previous day, and the share of the day's posts it samples.
    audit_enabled: bool = True
    audit_time: str = "02:00"
    audit_share: Probability = 0.05
    #: LLM agreement under this raises a drift alert and stores the LLM labels for retraining.
    audit_min_agreement: Probability = 0.90
    #: Retrain automatically when a closed day triggers it (else only ``sentiflow retrain``).
    auto_retrain: bool = False
    #: How often a node checks ``models/ACTIVE`` for a version promoted elsewhere (CLI).
    reload_poll_s: FinitePositive = 5.0

    @field_validator("audit_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{2}):(\d{2})", value)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError("must be HH:MM (24 h, UTC)")
        return value

    @model_validator(mode="after")
    def _routing_key_with_url(self) -> DriftSettings:
        if self.alert_webhook_url is not None and self.pagerduty_routing_key is None:
            raise ValueError("alert_webhook_url needs pagerduty_routing_key")
        if self.alert_webhook_url is not None:
            _check_scheme(self.alert_webhook_url, ("http", "https"))
        if self.audit_share <= 0:
            raise ValueError("audit_share must be > 0")
        return self


_KAFKA_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class KafkaSettings(_Section):
    """Streaming ingest from Kafka (docs/streaming.md). Off while ``bootstrap_servers`` is
    empty, so the one-command run needs no broker."""

    #: ``host:port`` list (or one comma-separated string); empty = Kafka ingest off.
    bootstrap_servers: list[str] = Field(default_factory=list)
    #: Topics the readers subscribe to; a post's ``source`` defaults to its topic's name.
    topics: list[str] = Field(default_factory=lambda: ["posts"])
    group_id: str = Field(default="sentiflow", min_length=1, max_length=255)
    #: KafkaReader actors (consumers in the group) per node.
    readers: int = Field(default=1, ge=1, le=64)
    #: Unparseable posts and posts that failed past their retries go here (with the error).
    dead_letter_topic: str = "sentiflow.deadletter"
    #: When set, each result is produced here (JSON, key = request_id) after the durable write.
    results_topic: str | None = None
    #: Retries of a post the pipeline failed on (PipelineError) before it is dead-lettered.
    max_retries: int = Field(default=5, ge=0, le=100)
    retry_backoff_initial_s: FinitePositive = 0.5
    retry_backoff_max_s: FinitePositive = 10.0
    #: Posts a reader may have fetched but not yet made durable; past it its partitions pause.
    max_in_flight_posts: int = Field(default=4096, ge=1, le=1_000_000)
    max_poll_records: int = Field(default=500, ge=1, le=100_000)
    fetch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_partition_fetch_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Longest the broker holds a fetch waiting for data (latency floor of a quiet stream).
    #: 10 ms gave no clear gain at 833 posts/s and halved the 20k/s-offered phase in one run
    #: (more fetches on the same two cores): bench_ingest --fetch-max-wait-ms.
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=10_000)
    session_timeout_ms: int = Field(default=10_000, ge=500, le=3_600_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100, le=3_600_000)
    #: Where a group without a committed offset starts.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: How often durable progress is committed (also at every rebalance and at stop).
    commit_interval_ms: int = Field(default=200, ge=10, le=60_000)
    #: On a partition revoke, how long to wait for its in-flight posts before abandoning them
    #: uncommitted (the new owner then re-reads them; writes are idempotent).
    revoke_timeout_s: FiniteNonNegative = 10.0
    #: Graceful stop: how long a reader waits for in-flight posts before closing.
    shutdown_timeout_s: FinitePositive = 20.0

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, servers: list[str]) -> list[str]:
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return servers

    @field_validator("topics")
    @classmethod
    def _topic_list(cls, topics: list[str]) -> list[str]:
        if not topics:
            raise ValueError("must name at least one topic")
        for topic in topics:
            if not _KAFKA_TOPIC_RE.match(topic):
                raise ValueError(f"{topic!r} is not a valid topic name")
        return topics

    @field_validator("dead_letter_topic", "results_topic")
    @classmethod
    def _topic_name(cls, topic: str | None) -> str | None:
        if topic is not None and not _KAFKA_TOPIC_RE.match(topic):
            raise ValueError(f"{topic!r} is not a valid topic name")
        return topic

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.retry_backoff_max_s < self.retry_backoff_initial_s:
            raise ValueError("retry_backoff_max_s must be >= retry_backoff_initial_s")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be < session_timeout_ms")
        inputs = set(self.topics)
        if self.dead_letter_topic in inputs or self.results_topic in inputs:
            raise ValueError("dead_letter_topic / results_topic must not be input topics")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.bootstrap_servers)


class ModelPrice(_Section):
    """USD per million tokens of one LLM model."""

    input_per_million: FiniteNonNegative
    output_per_million: FiniteNonNegative


class LLMSettings(_Section):
    """The LLM tier (issue 7, docs/llm.md): second opinion for low-confidence posts.

    Off unless ``base_url`` or ``api_key`` is configured (so the node runs offline by default).
    Any OpenAI-compatible chat-completions server works (OpenAI, Azure, vLLM, Ollama).
    """

    #: Kill switch; the tier runs only when enabled AND ``base_url`` or ``api_key`` is set.
    enabled: bool = True
    #: ``None``: the openai client's default (api.openai.com). E.g. ``http://vllm:8000/v1``.
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = Field(default="gpt-4o-mini", min_length=1)
    #: Escalator actors (each batches low-confidence posts into LLM requests).
    pool_size: int = Field(default=2, ge=1, le=64)
    #: Each escalator's mailbox; when full the router keeps the fast result (see docs/llm.md).
    mailbox_size: MailboxSize = 64
    #: Low-confidence posts one escalator holds (queued + in flight) before it stops reading
    #: its mailbox (which then fills: the router's saturation signal).
    max_pending_posts: int = Field(default=256, ge=1, le=1_000_000)
    #: Posts judged in one chat completion (fewer requests under a requests/min limit).
    max_posts_per_request: int = Field(default=16, ge=1, le=256)
    #: Client-side limits (token buckets); the server's 429 / x-ratelimit-* headers also apply.
    requests_per_minute: PositiveInt = 500
    #: Prompt + completion tokens per minute.
    tpm_limit: PositiveInt = 200_000
    #: Chat completions in flight at once (all escalators together).
    concurrency: int = Field(default=16, ge=1, le=1024)
    #: Per-attempt timeout of one chat completion.
    timeout_s: FinitePositive = 10.0
    #: Attempts per request (the first included) on 429, 5xx, timeouts and connection errors.
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_initial_s: FinitePositive = 0.2
    backoff_max_s: FinitePositive = 10.0
    #: Consecutive failed requests that open the circuit breaker (429s are not failures).
    breaker_failures: int = Field(default=5, ge=1, le=10_000)
    #: Seconds the breaker stays open before one trial request (half-open).
    breaker_reset_s: FinitePositive = 30.0
    #: USD per million tokens by model; the configured ``model`` must be listed.
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: {
        "gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.60)})
    #: Spend per UTC day; when reached, escalation stops until midnight UTC (posts -> review).
    daily_budget_usd: FiniteNonNegative = 500.0
    #: Most escalated posts as a share of all routed posts today (a running ratio).
    max_escalation_share: Probability = 0.25
    #: The share cap applies once this many posts were routed today (no cap on a cold start).
    share_min_posts: int = Field(default=1000, ge=0)
    #: Realtime posts: the fast result goes on (flagged) if the LLM has not answered by then,
    #: measured from the node's acceptance; a later answer updates the stored result.
    realtime_deadline_ms: float = Field(default=300.0, gt=0, le=60_000, allow_inf_nan=False)
    #: The same for standard priority (batch priority waits for the LLM's answer or failure).
    standard_deadline_s: FinitePositive = 5.0
    #: An LLM answer less confident than this still goes to human review.
    min_llm_confidence: Probability = 0.5
    #: Completion tokens allowed per post (per post and aspect when aspects are asked).
    completion_per_post: int = Field(default=40, ge=8, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    @property
    def active(self) -> bool:
        """True when the tier should run: enabled and an endpoint or key configured."""
        return self.enabled and (self.base_url is not None or self.api_key is not None)

    @model_validator(mode="after")
    def _priced_model(self) -> LLMSettings:
        if self.model not in self.prices:
            raise ValueError(f"no price for model {self.model!r}: add llm.prices.{self.model} "
                             "(input_per_million, output_per_million) so spend can be capped")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


def _check_scheme(url: str, allowed: tuple[str, ...]) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in allowed:
        raise ValueError(f"URL must start with one of {', '.join(s + '://' for s in allowed)}")
    return url


def _resolve_file_url(url: str, home: Path) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////<home>/rel.db``; absolute and in-memory URLs kept."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("sqlite", "chdb") or not rest.startswith("/"):
        return url
    path = rest[1:]
    if path in ("", ":memory:") or path.startswith("/"):
        return url
    return f"{scheme}:///{(home / path).resolve()}"  # absolute: four slashes


class TrendsSettings(_Section):
    """Trend analytics at ``storage.trends_url`` (ClickHouse, or chDB embedded): the writer that
    feeds it from the result sink and ``GET /api/trends`` (docs/trends.md)."""

    enabled: bool = True
    #: ClickHouse database holding the trend tables (created at start).
    database: str = Field(default="sentiflow", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    #: The writer inserts at this many events or ``writer_max_wait_ms`` after the first one
    #: (ClickHouse prefers few large inserts to many small ones).
    writer_max_batch: int = Field(default=4096, ge=1, le=1_000_000)
    writer_max_wait_ms: float = Field(default=250.0, ge=0, le=60_000, allow_inf_nan=False)
    #: Messages (each one sink flush's records) the writer may queue; when full, the sink
    #: waits (backpressure) instead of dropping trend events.
    writer_mailbox_size: MailboxSize = 256
    #: Attempts per insert (first try included) with exponential backoff between them; after
    #: the last one the batch is dropped from trends (counted and logged, results unaffected).
    writer_max_attempts: int = Field(default=8, ge=1, le=1000)
    writer_backoff_initial_s: FinitePositive = 0.2
    writer_backoff_max_s: FinitePositive = 10.0
    #: Widest answer ``GET /api/trends`` gives, in buckets (a wider range is a 422).
    max_buckets: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _backoff_order(self) -> TrendsSettings:
        if self.writer_backoff_max_s < self.writer_backoff_initial_s:
            raise ValueError("writer_backoff_max_s must be >= writer_backoff_initial_s")
        return self


class AspectSettings(_Section):
    """Aspect-based sentiment (issue 8, docs/aspects.md): the AspectWorker pool between the
    router / LLM escalators and the sink, for requests with ``aspects: true``."""

    enabled: bool = True
    pool_size: int = Field(default=2, ge=1, le=64)
    mailbox_size: MailboxSize = 1024
    #: TOML / JSON file with a ``categories`` table replacing the built-in taxonomy.
    taxonomy_file: Path | None = None
    #: Inline categories merged on top: ``{name = {domains = [...], terms = {en = [...]}}}``.
    categories: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Keep only categories of these domains (e.g. ``["restaurant"]``); empty = all.
    domains: list[str] = Field(default_factory=list)
    #: ``auto``: the trained artifact under ``<home>/aspect-models`` when there is one, else
    #: the keyword lists + the classifier's model on each aspect's clause; ``lexicon``: never
    #: load the artifact.
    model: Literal["auto", "lexicon"] = "auto"
    #: Train the artifact at start (~1 min) when missing, the default model is in use and the
    #: ABSA data is present (off by default: ``sentiflow eval --aspects`` trains it too).
    train_if_missing: bool = False
    #: Aspects reported per post at most (ids ``<request_id>#0..9`` sort as text).
    max_per_post: int = Field(default=10, ge=1, le=10)
    #: Overall label ``mixed`` when a positive and a negative aspect both reach this confidence.
    mixed_min_confidence: Probability = 0.6
    #: Aspects under this confidence go to the LLM tier when it is on, else their post is
    #: flagged for review (0 disables both).
    review_below: Probability = 0.5
    #: With the LLM tier on, send those aspects to the LLM first (docs/aspects.md).
    llm_escalation: bool = True


class Settings(BaseSettings):
    """The whole node's configuration. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    node: NodeSettings = Field(default_factory=NodeSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    language: LanguageSettings = Field(default_factory=LanguageSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    trends: TrendsSettings = Field(default_factory=TrendsSettings)
    aspects: AspectSettings = Field(default_factory=AspectSettings)

    @model_validator(mode="after")
    def _absolute_store_urls(self) -> Settings:
        home = self.node.home.expanduser()
        storage = self.storage.model_copy(
            update={
                "results_url": _resolve_file_url(self.storage.results_url, home),
                "trends_url": _resolve_file_url(self.storage.trends_url, home),
            }
        )
        object.__setattr__(self, "storage", storage)  # frozen model: set once, during validation
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment (the mapping given to :func:`load_settings`) first, then the TOML data
        (passed as init kwargs), then defaults. No dotenv / secrets-dir sources."""
        environ = _ENVIRON.get()
        if environ is None:
            return env_settings, init_settings
        return _MappingEnvSource(settings_cls, environ), init_settings

    def masked_dump(self) -> dict[str, Any]:
        """The effective configuration as JSON-compatible data with every secret masked.

        This is what ``sentiflow config show`` prints; it never contains a secret value.
        """
        data: dict[str, Any] = self.model_dump(mode="json")
        # SecretStr already serialises as "**********" in JSON mode; re-mask defensively so a
        # future field typed as plain str with "secret"/"key" in its name cannot leak.
        masked: dict[str, Any] = _mask_tree(data)
        return masked


def _mask_tree(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _mask_tree(v, k) for k, v in node.items()}
    secretish = any(word in key for word in ("secret", "password", "api_keys", "token"))
    if isinstance(node, list):
        return [MASK if secretish else _mask_tree(v) for v in node]
    if secretish and node is not None:
        return MASK
    if isinstance(node, str) and "://" in node:  # a password inside a URL (storage URLs)
        from sentiflow.stores.pg_url import redact_url

        return redact_url(node)
    return node


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("sentiflow_settings_environ",
                                                            default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The stock environment source reading an explicit mapping instead of ``os.environ``
    (so tests and tools can load settings for an environment that is not the process's)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


@contextmanager
def _environ_scope(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def _with_aliases(env: Mapping[str, str]) -> dict[str, str]:
    upper = {k.upper(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX)}
    for alias, target in ENV_ALIASES.items():
        if alias in upper and target not in upper:
            upper[target] = upper[alias]
    for alias in (*ENV_ALIASES, CONFIG_ENV_VAR):
        upper.pop(alias, None)
    return upper


def config_path_from(path: Path | None, env: Mapping[str, str]) -> Path | None:
    """The TOML file to read: ``path`` if given, else ``$SENTIFLOW_CONFIG``, else none."""
    if path is not None:
        return path
    named = env.get(CONFIG_ENV_VAR)
    return Path(named).expanduser() if named else None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse ``path``; a missing file or a syntax error is a :class:`ConfigError`."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"], source=str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc}"], source=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], source=str(path)) from exc


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the node's settings.

    ``path`` is the TOML file (``--config``); when ``None``, ``$SENTIFLOW_CONFIG`` names it, and
    with neither only defaults and environment apply. ``env`` defaults to ``os.environ``.
    Raises :class:`ConfigError` naming each bad key.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    toml_path = config_path_from(path, environ)
    file_data = read_toml(toml_path) if toml_path is not None else {}
    scoped_env = _with_aliases(environ)
    try:
        with _environ_scope(scoped_env):
            return Settings(**file_data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, scoped_env),
                          source=str(toml_path) if toml_path else None) from None


_SECRET_KEYS = ("secret", "api_keys")


def format_validation_error(exc: ValidationError, env: Mapping[str, str]) -> list[str]:
    """One ``"dotted.key: reason"`` line per problem, naming the env variable when it was the
    source and never echoing a secret's value."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        parts = [str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
        key = ".".join(parts) or "<root>"
        reason = _reason(err)
        if not any(s in key for s in _SECRET_KEYS) and err["type"] not in ("missing",):
            shown = err.get("input")
            if not isinstance(shown, dict | list) and shown is not None:
                reason += f" (got {shown!r})"
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(p.upper() for p in parts[:2])
        if parts and env_name in env:
            reason += f" [from {env_name}]"
        lines.append(f"{key}: {reason}")
    return lines


def _reason(err: Any) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    simple = {
        "extra_forbidden": "unknown key",
        "missing": "required",
        "int_parsing": "must be an integer",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a table",
        "model_type": "must be a table",
    }
    if kind in simple:
        return simple[kind]
    bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">",
              "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        if isinstance(limit, float) and math.isfinite(limit) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}"
    if kind in ("string_too_short", "too_short"):
        return f"must have at least {ctx.get('min_length', '?')} item(s)/character(s)"
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


__all__ = [
    "CONFIG_ENV_VAR",
    "ApiSettings",
    "AspectSettings",
    "ClassifierSettings",
    "ConfigError",
    "DriftSettings",
    "KafkaSettings",
    "LLMSettings",
    "LanguageSettings",
    "LoggingSettings",
    "NodeSettings",
    "Probability",
    "RouterSettings",
    "Settings",
    "StorageSettings",
    "TrendsSettings",
    "WebhookSettings",
    "config_path_from",
    "format_validation_error",
    "load_settings",
    "read_toml",
]
