"""The Cloud Storage emulator moved to devtools/storage_emulator.py (the load harness uses it too)."""

from devtools.storage_emulator import PROJECT, StorageEmulator, storage_emulator

__all__ = ["PROJECT", "StorageEmulator", "storage_emulator"]
