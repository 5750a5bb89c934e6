"""Database plumbing: where PostgreSQL is, the engine that talks to it, and its schema migrations."""
