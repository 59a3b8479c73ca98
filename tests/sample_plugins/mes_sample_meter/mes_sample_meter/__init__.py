"""A sample third-party plugin: a meter that reads a value, guarded by a breaker."""
