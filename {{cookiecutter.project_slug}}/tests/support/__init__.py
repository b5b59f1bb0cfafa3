"""Helpers shared by the tests: real workers, probe tasks, private servers, the deploy files."""
