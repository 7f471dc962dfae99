"""One package per vendor: its documented facts (spec), adapter and emulator; vendors.registry lists them."""
