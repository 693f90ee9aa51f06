"""The composition root: the `fsd` command, the demo and the benchmarks.

It sits on top of the library (the rest of ``fsd``), the search (``search``) and the server
(``service``) and wires them together; nothing imports it back (tests/test_import_rules.py).
"""

from fsd.openmp import prefer_passive_waiting

prefer_passive_waiting()  # before anything below imports torch

from fsd.cli.app import app, main  # noqa: E402

__all__ = ["app", "main"]
