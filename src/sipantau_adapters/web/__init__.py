"""The desk's web page: a live, role-scoped view of election day, served beside the API.

See ``docs/web.md``.
"""
