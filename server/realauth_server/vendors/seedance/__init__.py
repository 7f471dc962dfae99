"""Seedance relay (Ark): spec (documented facts), adapter and emulator."""
