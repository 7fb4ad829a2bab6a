"""Sukverse quiz service: a reusable quiz engine."""
