"""Shared helpers for the kernel's own tests (fixtures come from mes_kernel.testing)."""
