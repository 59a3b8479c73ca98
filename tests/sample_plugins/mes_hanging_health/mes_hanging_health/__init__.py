"""A plugin with a hanging health check."""
