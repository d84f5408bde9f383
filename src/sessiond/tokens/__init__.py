"""Access-token signing keys (``keys``), access JWTs (``access``), refresh tokens."""
