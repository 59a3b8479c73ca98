"""Raises at import, as a plugin with a missing dependency would."""

raise ImportError("No module named 'vendor_sdk' (the printer vendor's SDK is not installed)")
