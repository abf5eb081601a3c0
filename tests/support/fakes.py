"""The fakes moved to devtools/fakes.py (bench/ and the load harness use them too); kept here for the tests' imports."""

from devtools.fakes import Answer, FakeAirflow, FakeMetadataServer, FakeServer, Seen, ServedFake
from devtools.ports import free_port

__all__ = ["Answer", "FakeAirflow", "FakeMetadataServer", "FakeServer", "Seen", "ServedFake", "free_port"]
