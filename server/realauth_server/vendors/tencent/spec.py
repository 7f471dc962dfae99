"""Tencent Cloud FaceID (eKYC) Intl, mobile HTML5 flow: the vendor's documented facts, no logic.

Sources (public):
- ApplyWebVerificationBizTokenIntl: https://www.tencentcloud.com/document/api/1061/56227
- GetWebVerificationResultIntl: https://www.tencentcloud.com/document/api/1061/56226
- eKYC error codes: https://www.tencentcloud.com/document/product/1061/55390
- common API 3.0 error codes: https://tencentcloud.com/document/product/1140/51177
- request limits: https://tencentcloud.com/zh/document/product/1061/36931

The adapter and the emulator both read these; tests/test_vendor_facts.py pins each one with the literal the
documents give, so a wrong value here fails a test rather than being enforced identically on both sides.
"""

from __future__ import annotations

#: API 3.0 service, version and the two actions of the mobile HTML5 flow (56227, 56226).
SERVICE = "faceid"
VERSION = "2018-03-01"
APPLY = "ApplyWebVerificationBizTokenIntl"
RESULT = "GetWebVerificationResultIntl"
DEFAULT_BASE_URL = "https://faceid.intl.tencentcloudapi.com/"
#: Regions of ApplyWebVerificationBizTokenIntl: ap-bangkok, ap-jakarta, ap-singapore; the newest page (56227) adds
#: ap-hongkong and sa-saopaulo.
REGIONS = ("ap-bangkok", "ap-jakarta", "ap-singapore", "ap-hongkong", "sa-saopaulo")
#: BizToken: "validity time of 10 minutes" to start the verification (56227).
START_WINDOW = 600.0
#: The result can be fetched repeatedly for 3 days (56226).
RESULT_WINDOW = 259_200.0
#: 20 requests per second for each API (56226, 56227, 1061/36931).
VENDOR_RATE_LIMIT = 20
#: CompareImageBase64: at most 8 MB after base64 encoding (56227).
MAX_IMAGE_BASE64 = 8 * 1024 * 1024
#: Extra: at most 1,000 characters, passed through to the result (56227).
MAX_EXTRA = 1000
#: RuleId (the console's verification rule): at most 128 characters (realauth's bound; the page gives none).
MAX_RULE_ID = 128
#: Config.Language values: Thai, English, Simplified Chinese, Traditional Chinese, Indonesian (56227).
LANGUAGES = ("th", "en", "zh-cn", "zh-tc", "id")
#: ``Config.Version`` values: BASIC and PLUS (56227).
VERSIONS = ("BASIC", "PLUS")
#: GetWebVerificationResultIntl ``ErrorCode`` 15: the BizToken expired before the person finished (1061/55390).
RESULT_TOKEN_EXPIRED = 15

# Not vendor facts: the built-in emulator's public sandbox credentials (they grant nothing real).
SANDBOX_SECRET_ID = "AKIDrealauthSandbox0000000000000000"
SANDBOX_SECRET_KEY = "realauthSandboxTencentKey000000000"
SANDBOX_REGION = "ap-singapore"
