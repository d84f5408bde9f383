"""Revocation events and the buses that carry them to every replica's denylist."""
