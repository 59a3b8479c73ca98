"""Test helpers for the station: a real HTTP server speaking the kernel's station contract."""
