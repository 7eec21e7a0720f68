"""Alembic environment and revisions (a package so the revisions ship in the wheel)."""
