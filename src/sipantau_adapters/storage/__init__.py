"""Storage backends: ``memory://`` and SQL (``sqlite:///PATH``, ``postgresql://…``)."""
