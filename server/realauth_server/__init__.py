"""realauth: one vendor-neutral gRPC API for real-person (liveness) verification."""

__version__ = "0.1.0"
