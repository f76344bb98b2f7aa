"""ASGI app: JSON API, Server-Sent Events, pages, static files."""
