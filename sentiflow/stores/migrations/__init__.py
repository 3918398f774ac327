"""Versioned schema migrations, one folder per SQL backend (``postgres/NNNN_name.sql``).

The files are package data: :mod:`sentiflow.stores.pg_migrations` reads them with
:mod:`importlib.resources`, so they ship inside the wheel and need no path configuration.
"""
