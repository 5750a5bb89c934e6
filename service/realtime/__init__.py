"""Live updates: the per-process log feed and the server-sent event streams built on it."""
