"""realauth.v1 messages (realauth_pb2) and stubs (realauth_pb2_grpc.RealAuthServiceStub)."""
