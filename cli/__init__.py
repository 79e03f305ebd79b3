"""Click commands for ``mlxsft``. Thin: parse flags, call the library, render through ``ui``.

Installed as ``mlxsft.cli`` (see pyproject's package-dir), never as a top-level ``cli``.
"""
