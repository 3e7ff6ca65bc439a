"""Fixtures of the real-server tests."""

from redis_server import redis_server, redis_server_factory

__all__ = ["redis_server", "redis_server_factory"]
