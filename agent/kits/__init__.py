"""Kits: the small helpers every layer shares (timestamps, backoff, asyncio task helpers, logging setup, stop
signals).

The bottom floor: it imports nothing else of the project, so the API types, the decisions, the adapters and
the lifecycles can all use one copy of each instead of the layer that needed it first holding it.
"""
