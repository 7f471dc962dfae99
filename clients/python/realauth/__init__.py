"""Generated Python client for the realauth.v1 gRPC API (see proto/realauth/v1)."""
