"""Volcengine visual identity verification, H5 edition ("H5增强版"): the vendor's documented facts, no logic.

Sources (public):
- H5 integration and the h5-v2.kych5.com link: https://www.volcengine.com/docs/6973/1209428
- CertH5Token (byted_token 60 min, single use): https://volcengine.com/docs/6973/1209468
- CertVerifyQuery (query data kept 1 h): https://volcengine.com/docs/6973/1217703
- STS AssumeRole for the H5 keys: https://www.volcengine.com/docs/6973/1256347
- client result codes: https://www.volcengine.com/docs/6973/1545826
- signing (service ``cv``, region ``cn-north-1``): https://www.volcengine.com/docs/6369/67269

The adapter and the emulator both read these; tests/test_vendor_facts.py pins each one with a literal.
"""

from __future__ import annotations

#: Visual OpenAPI version, V4 signing service and region of the Cert* actions (6973/1209428, 6369/67269).
VERSION = "2022-08-31"
SERVICE = "cv"
REGION = "cn-north-1"
#: STS AssumeRole version (6973/1256347).
STS_VERSION = "2018-01-01"
#: ``code`` of a successful call, and the H5 ``resultCode`` of a passed verification (6973/1545826).
RESULT_OK = 10000
#: CertH5ConfigInit ``expire_duration`` (config_id lifetime, seconds): default 900, range 60-7200 (6973/1209428).
DEFAULT_EXPIRE = 900
EXPIRE_RANGE = (60, 7200)
#: byted_token from CertH5Token: 60 min, one verification (6973/1209468).
BYTED_TOKEN_WINDOW = 3600.0
#: CertVerifyQuery keeps a result 1 h after the verification (6973/1217703).
QUERY_KEEP = 3600.0
#: ``liveness_config.motion_type`` values (6973/1209428).
MOTIONS = ("0", "1", "2", "3")
#: CallBackInfo fields that are encrypted; ``result`` alone is plain (6973/1209428).
PUSH_FIELDS = ("source_comp_details", "verify_req_measure_info", "verify_algorithm_base_resp", "byted_token")

# Not vendor facts: the built-in emulator's public sandbox credentials and callback client (they grant nothing real).
SANDBOX_ACCESS_KEY_ID = "AKLTsandboxrealauthvolcengine"
SANDBOX_SECRET_ACCESS_KEY = "c2FuZGJveC1yZWFsYXV0aC12b2xjZW5naW5lLXNr"
SANDBOX_ROLE_TRN = "trn:iam::2100000000:role/realauth-sandbox-h5"
SANDBOX_CALLBACK_CLIENT = "realauth-sandbox"
SANDBOX_CALLBACK_KEY = "hex:7362782d63616c6c6261636b2d6b6579"
