"""PostgreSQL for the tests: every use gets its own fresh schema, dropped afterwards.

The server is the one CI starts (``bash scripts/services.sh``): ``127.0.0.1:5432``, user
``postgres``, database ``test``; ``SIPANTAU_TEST_PG_URL`` points elsewhere. When it cannot
be reached the tests that need it FAIL, saying so: they are never skipped silently.

Use the fixtures (``from pg import pg_url, pg_url_factory``) or the context manager::

    with fresh_schema() as url:   # postgresql://…/test?schema=sipantau_test_1f3a…
        storage = SQLStorage(url)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import pytest

__all__ = [
    "PG_URL",
    "drop_schema",
    "fresh_schema",
    "libpq_url",
    "pg_url",
    "pg_url_factory",
    "require_postgres",
]

PG_URL = os.environ.get("SIPANTAU_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA_PREFIX = "sipantau_test_"


def libpq_url(url: str = PG_URL) -> str:
    """``url`` as libpq reads it: without SQLAlchemy's driver suffix or ``?schema=``."""
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    query = [q for q in parts.query.split("&") if q and not q.startswith("schema=")]
    return urlunsplit(parts._replace(query="&".join(query)))


def require_postgres(url: str = PG_URL) -> None:
    """Fail the test (never skip) when the server cannot be reached."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({e}). The postgres tests need it: start "
            "it with `bash scripts/services.sh` (CI does), or point SIPANTAU_TEST_PG_URL at "
            "a server.",
            pytrace=False,
        )


def drop_schema(name: str, url: str = PG_URL) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def fresh_schema(url: str = PG_URL) -> Iterator[str]:
    """A URL whose ``?schema=`` names a schema no one uses yet (``SQLStorage`` creates
    it); the schema is dropped, CASCADE, afterwards."""
    require_postgres(url)
    name = SCHEMA_PREFIX + secrets.token_hex(6)
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"schema": name})) if q)
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        drop_schema(name, url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema of its own."""
    with fresh_schema() as url:
        yield url


@pytest.fixture
def pg_url_factory() -> Iterator[Callable[[], str]]:
    """Makes as many fresh-schema URLs as a test needs; all dropped at its end."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_schema())
