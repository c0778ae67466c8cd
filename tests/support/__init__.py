"""Helpers the test modules share: plain functions, constants and real test servers.

Fixtures live in conftest.py; a test module imports from here, never from another test module.
"""
