"""sipantau-musirawas: Kabupaten Musi Rawas's own plugin for sipantau.

Installing the package is enough: its ``sipantau`` entry point names
:mod:`sipantau_musirawas.plugin`, which every desk loads. See the README.
"""

from __future__ import annotations

__version__ = "0.1.0"
