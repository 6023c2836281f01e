"""The HTTP serving API (FastAPI).  ``create_app`` is the factory uvicorn and the tests use."""

from engine.api.app import create_app

__all__ = ["create_app"]
