"""Sukverse analytics: read models of learning progress built only from events."""
