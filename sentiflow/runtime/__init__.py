"""Actor core: actors, refs, bounded mailboxes, the actor system and introspection.

Knows nothing about sentiment; backend-neutral (anyio: asyncio and trio).
"""
