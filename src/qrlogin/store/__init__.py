"""Storage: a port (``typing.Protocol``) and the SQLAlchemy Core adapter for SQLite and
PostgreSQL. Every state transition is one atomic conditional update."""
