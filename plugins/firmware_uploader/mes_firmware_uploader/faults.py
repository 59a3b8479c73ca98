"""The faults the uploader simulator (service and in-process driver) can inject, by name.

Kept apart from the simulator service so that the in-process driver loads at a station, where the
service's web stack (Starlette) is not installed.
"""

FAULTS = ("http_5xx", "timeout", "corrupt", "slow")
