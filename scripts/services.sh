#!/usr/bin/env bash
# Start the local services the tests use, if they are not running yet.
# PostgreSQL: 127.0.0.1:5432, user postgres, trust auth, database "test".
set -euo pipefail

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_ready; then
    echo "services: starting PostgreSQL" >&2
    cluster=$(ls /etc/postgresql 2>/dev/null | head -n 1)
    if [ -n "$cluster" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
    fi
    for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
  fi
  if pg_ready; then
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" postgres \
      | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres >/dev/null
  else
    echo "services: PostgreSQL is not reachable at 127.0.0.1:5432" >&2
  fi
else
  echo "services: pg_isready not found; PostgreSQL tests will report the server missing" >&2
fi
