"""PostgreSQL migrations: ``NNNN_name.sql`` files, applied in version order at store open."""
