"""Connectors to external systems: each has a real httpx client and an in-process simulator."""
