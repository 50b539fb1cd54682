"""Helpers shared by the tests (data, small models); fixtures live in tests/conftest.py."""
