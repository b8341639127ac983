"""The ``cmrqc`` command.

Modules
-------
core     the parser and the core subcommands: demo, dataset, user, stats, export
team     metrics, assign, agreement
serving  serve, hub
dicom    convert-dicom
"""

from .core import build_parser, main

__all__ = ["build_parser", "main"]
