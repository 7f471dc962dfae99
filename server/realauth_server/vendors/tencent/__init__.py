"""tencent: spec (documented facts), adapter and emulator."""
