"""Azurite (Microsoft's Azure Storage emulator, npm) for the Azure Blob backend's tests."""
