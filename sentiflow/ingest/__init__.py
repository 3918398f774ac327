"""Streaming ingest from Kafka: readers in a consumer group, at-least-once into the pipeline,
dead letters and an optional results topic (docs/streaming.md).

Import the submodules (``reader``, ``tree``, ``clients``): this package's ``__init__`` stays
free of aiokafka so that parsing (``posts``) and offset bookkeeping (``offsets``) are usable
without it.
"""
