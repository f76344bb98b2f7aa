"""End-to-end tests in real Chromium (see tests/conftest.py for the fixtures)."""
