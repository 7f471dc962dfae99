"""Seedance 2.0 real-avatar verification, through the relay or Ark: the vendor's documented facts, no logic.

Sources (public):
- relay interfaces ⑪ ``POST /v1/real-avatar/auth/session`` and ⑫ ``POST /v1/real-avatar/groups/from-token``:
  https://doc.aimanyi.top/api-467133497.html
- BytePlus ModelArk real-human asset guide (H5Link, the 120 s BytedToken window):
  https://docs.byteplus.com/en/docs/ModelArk/2333589
- Volcengine Ark pages for the same actions: https://www.volcengine.com/docs/82379/2333587

The adapter and the emulator both read these; tests/test_vendor_facts.py pins each one with a literal.
"""

from __future__ import annotations

#: The two Seedance 2.0 models the relay's ``model`` field takes (aimanyi ⑪, ⑫).
MODELS = ("doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128")
#: BytedToken and H5Link live 120 s: ⑫ must be called within 120 s of ⑪ (aimanyi ⑫; ModelArk 2333589).
TOKEN_WINDOW = 120.0
#: The H5 page's browser redirect ``resultCode`` for a passed verification (Volcengine 6973/1545826).
RESULT_OK = "10000"
#: Ark OpenAPI version, V4 signing service and region of the real-human actions (ModelArk 2333589, 82379/2333587).
ARK_VERSION = "2024-01-01"
ARK_SERVICE = "ark"
ARK_REGION = "cn-beijing"
#: realauth operation → Ark action.
ARK_ACTIONS = {"CreateAuthSession": "CreateVisualValidateSession", "ExchangeToken": "GetVisualValidateResult"}

# Not vendor facts: the built-in emulator's public sandbox credentials (they grant nothing real).
SANDBOX_API_KEY = "sandbox-seedance-relay-key"
SANDBOX_ARK_ACCESS_KEY_ID = "AKLTsandboxrealauthark"
SANDBOX_ARK_SECRET_ACCESS_KEY = "c2FuZGJveC1yZWFsYXV0aC1hcms="
