"""Storage: short-lived artefacts and the durable directory, with SQLite and Redis backends.

Callers depend on the protocols in ``base``; ``open_store(url)`` picks the backend.
"""
