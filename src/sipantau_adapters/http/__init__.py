"""The HTTP API v1 of a desk (see ``docs/http.md``).

- :mod:`sipantau_adapters.http.server`: ``create_app(desk)`` (a Starlette application)
  and ``serve(desk, host, port)``;
- :mod:`sipantau_adapters.http.openapi`: the OpenAPI 3.1 document (kept in
  ``docs/openapi.json``);
- :mod:`sipantau_adapters.http.client`: the monitor client.

This package imports nothing itself, so that the client does not load the server.
"""
