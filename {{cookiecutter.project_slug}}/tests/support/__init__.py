"""Helpers for tests that run real worker processes against the real broker."""
