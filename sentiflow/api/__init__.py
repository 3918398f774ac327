"""The Quart REST API, its request/response schemas and the introspection console."""
