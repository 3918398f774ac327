"""Typed settings (TOML file + SENTIFLOW_* environment) and the supervision tree's wiring."""
