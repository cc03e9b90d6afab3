"""Database access: declarative base, engine, sessions and migrations."""
