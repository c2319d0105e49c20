"""Builders, servers and data shared by the test folders, imported as ``tests.helpers.<module>``."""
