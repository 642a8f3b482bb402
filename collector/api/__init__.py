"""REST API of the collector (FastAPI)."""
