"""Persistence: models, repositories, sessions, the embedded PostgreSQL."""
