"""The in-memory list of revoked tokens, sessions and subjects each replica checks against."""
