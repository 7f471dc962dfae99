"""megvii: spec (documented facts), adapter and emulator."""
