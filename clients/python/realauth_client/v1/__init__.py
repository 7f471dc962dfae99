"""realauth.v1 messages (realauth_pb2) and stubs (realauth_pb2_grpc.RealAuthServiceStub), generated from
proto/realauth/v1 by `make generate` (do not edit the *_pb2* files)."""
