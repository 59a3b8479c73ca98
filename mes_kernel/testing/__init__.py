"""Test kit for plugin authors: a pytest plugin with kernel app and client fixtures."""
