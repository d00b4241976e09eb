"""Thin route modules: parse the request, call the engine, shape the answer."""
