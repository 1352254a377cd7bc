"""The transfer tests keep the ingest tests' guards: no connection leaves this machine and the
system resolver is never asked (an import by reference must not fetch its images)."""

from tests.ingest.conftest import connections, no_system_dns

__all__ = ["connections", "no_system_dns"]
