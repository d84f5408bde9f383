"""Service credentials: scoped bearer secrets for the service routes, stored only as hashes."""
