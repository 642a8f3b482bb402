"""The service desk: server-rendered pages under /desk of the API process (docs/desk.md).

FastAPI + Jinja2 templates, one vendored stylesheet and one small script for the live
countdowns; no build step and nothing from a CDN. Same tokens and roles as the REST API.
"""

from collector.api.desk.routes import router

__all__ = ["router"]
