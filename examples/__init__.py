"""Runnable examples of sessiond (see each folder's README.md)."""
