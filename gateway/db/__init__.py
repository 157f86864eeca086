"""Persistence: engine and sessions, table models, and every SQL statement (repositories)."""
