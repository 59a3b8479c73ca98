"""HTTP API of the kernel."""
