"""Alembic migrations of the cloud database (run with ``cloud-api migrate``)."""
