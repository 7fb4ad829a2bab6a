"""Sukverse certificate service: templates, criteria, issuing and verification."""
