"""Sukverse workshop service: workshops, steps, enrollments and progress."""
