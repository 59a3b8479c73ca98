"""Database layer: engine and sessions, table models, and helpers that work on SQLite and PostgreSQL."""
