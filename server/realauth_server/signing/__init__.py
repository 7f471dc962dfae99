"""Request signing: a pure function per vendor scheme, each wrapped as an ``httpx.Auth``."""
