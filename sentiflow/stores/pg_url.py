"""PostgreSQL URL checks and redaction (no driver import: the settings use these at load).

asyncpg parses the URL itself when connecting; this only refuses what can never work, early and
with a message that names the problem, and hides passwords in anything shown or logged.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")


def check_postgres_url(url: str) -> str:
    """``url`` if it is a usable ``postgresql://`` / ``postgres://`` URL, else ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        expected = " or ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"not a PostgreSQL URL (expected {expected})")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError as exc:
        raise ValueError(f"bad port in PostgreSQL URL {redact_url(url)}: {exc}") from None
    if parts.fragment:
        raise ValueError(f"PostgreSQL URL {redact_url(url)} must not have a #fragment")
    if any(c.isspace() for c in url):
        raise ValueError("PostgreSQL URL must not contain whitespace")
    return url


def redact_url(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``; other text unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
