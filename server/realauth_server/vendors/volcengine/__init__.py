"""volcengine: spec (documented facts), adapter and emulator."""
