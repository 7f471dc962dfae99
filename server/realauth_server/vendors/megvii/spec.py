"""Megvii FaceID H5 "lite" flow and the v5 error table: the vendor's documented facts, no logic.

Sources (public):
- lite get_token: https://faceid.com/document/faceid-guide-docs/adv_h5_get_token
- lite get_result (kept 1 day, at most 3 calls): https://faceid.com/document/faceid-guide-docs/h5_get_result
- return_url / notify_url: https://v2.faceid.com/document/faceid-guide-docs/adv_h5_return_notify_url
- get_token ``language``: https://faceid.com/document/faceid-guide-docs/oversea_h5_get_token
- v5 get_biz_token and its error codes: https://faceid.com/document/faceid-guide-docs/app_api_authentication

The adapter and the emulator both read these; tests/test_vendor_facts.py pins each one with a literal.
"""

from __future__ import annotations

#: Lite flow endpoints: get_token (adv_h5_get_token), the page a person opens, get_result (h5_get_result).
GET_TOKEN_PATH = "/faceid/lite/get_token"
DO_PATH = "/faceid/lite/do"
GET_RESULT_PATH = "/faceid/lite/get_result"
#: get_result keeps a result one day and answers three calls (h5_get_result) — the exchange window.
RESULT_WINDOW = 86_400.0
#: Link lifetime when get_token gives no ``expired_time`` (not documented; see docs/providers/megvii.md).
DEFAULT_LINK_TTL = 3_600.0
#: ``result_code`` of a passed verification: same person, live (h5_get_result).
RESULT_PASSED = 1000
#: ``procedure_type`` values: video (default), still, flash, meglive_flash, selfie (basic H5) and will (advanced H5,
#: ``will_result``) (adv_h5_get_token).
PROCEDURE_TYPES = ("video", "still", "flash", "meglive_flash", "selfie", "will")
#: get_token ``language`` per realauth locale: "0" English, "1" Chinese (oversea_h5_get_token).
LANGUAGE = {"en": "0", "zh": "1", "zh-Hant": "1"}
#: Lite ``status`` values that end the flow, and those that do not yet (h5_get_result).
FINAL_STATUSES = ("OK", "FAILED", "CANCELLED", "TIMEOUT", "WEBRTC_UNSUPPORTED")
PENDING_STATUSES = ("NOT_STARTED", "PROCESSING")
#: get_token field limits in bytes: biz_no 128, biz_extra_data 4096, web_title 32 (adv_h5_get_token).
MAX_BIZ_NO = 128
MAX_BIZ_EXTRA = 4096
MAX_WEB_TITLE = 32
#: image_ref1: 2 MB, Megvii's per-image limit (adv_h5_get_token).
MAX_IMAGE = 2 * 1024 * 1024

# Not vendor facts: the built-in emulator's public sandbox credentials (they grant nothing real).
SANDBOX_API_KEY = "sandbox-megvii-api-key"
SANDBOX_API_SECRET = "sandbox-megvii-api-secret"
