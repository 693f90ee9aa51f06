"""The composition root: the `fsd` command, the demo and the benchmarks.

It sits on top of the library (the rest of ``fsd``), the search (``search``) and the server
(``service``) and wires them together; nothing imports it back (tests/test_import_rules.py).
"""

from fsd.cli.app import app, main

__all__ = ["app", "main"]
