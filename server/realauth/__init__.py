"""The server's generated realauth.v1 stubs (see proto/realauth/v1). Callers use the realauth-client distribution
(clients/python, import package `realauth_client`) instead, which carries its own copy of them."""
