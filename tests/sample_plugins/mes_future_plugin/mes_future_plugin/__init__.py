"""A plugin for a future kernel API."""
