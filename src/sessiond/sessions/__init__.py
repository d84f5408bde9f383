"""Session records, their stores (in memory and Redis) and the session lifecycle."""
