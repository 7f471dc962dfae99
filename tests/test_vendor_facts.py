"""Vendor facts, pinned with the literal values of the vendors' public documents.

Each expected value below is typed in from the page named beside it, never imported: a wrong constant in a
``vendors/<kind>/spec.py`` (which the adapter and the emulator both read) or in an emulator fails here, rather than
being enforced identically on both sides while every flow test passes. ``test_every_fact_an_emulator_reads_is_pinned``
keeps the list complete: a new fact an emulator imports from its spec must be pinned here too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest

VENDORS = Path(__file__).resolve().parents[1] / "server" / "realauth_server" / "vendors"

DAY = 86_400

#: kind → spec name → (literal from the document, where it says so).
SPEC: dict[str, dict[str, tuple[Any, str]]] = {
    "tencent": {
        "SERVICE": ("faceid", "https://www.tencentcloud.com/document/api/1061/56227 (domain faceid.intl...)"),
        "VERSION": ("2018-03-01", "https://www.tencentcloud.com/document/api/1061/56227 (Version)"),
        "APPLY": ("ApplyWebVerificationBizTokenIntl", "https://www.tencentcloud.com/document/api/1061/56227"),
        "RESULT": ("GetWebVerificationResultIntl", "https://www.tencentcloud.com/document/api/1061/56226"),
        "DEFAULT_BASE_URL": ("https://faceid.intl.tencentcloudapi.com/", "56227: faceid.intl.tencentcloudapi.com"),
        "REGIONS": (
            ("ap-bangkok", "ap-jakarta", "ap-singapore", "ap-hongkong", "sa-saopaulo"),
            "56227: ap-bangkok, ap-jakarta, ap-singapore; the newest page adds ap-hongkong, sa-saopaulo",
        ),
        "START_WINDOW": (600, "56227: BizToken 'validity time of 10 minutes'"),
        "RESULT_WINDOW": (3 * DAY, "56226: the result can be pulled for 3 days"),
        "VENDOR_RATE_LIMIT": (20, "56227: 'A maximum of 20 requests can be initiated per second for this API'"),
        "MAX_IMAGE_BASE64": (8 * 1024 * 1024, "56227: CompareImageBase64 'max 8 MB in size'"),
        "MAX_EXTRA": (1000, "56227: Extra 'max 1,000 characters'"),
        "LANGUAGES": (("th", "en", "zh-cn", "zh-tc", "id"), "56227: Config.Language"),
        "VERSIONS": (("BASIC", "PLUS"), "56227: Config.Version"),
        "RESULT_TOKEN_EXPIRED": (15, "https://www.tencentcloud.com/document/product/1061/55390: ErrorCode 15"),
    },
    "seedance": {
        "MODELS": (
            ("doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128"),
            "https://doc.aimanyi.top/api-467133497.html: model",
        ),
        "TOKEN_WINDOW": (120, "https://doc.aimanyi.top/api-467133497.html: from-token within 120 s"),
        "RESULT_OK": ("10000", "https://www.volcengine.com/docs/6973/1545826: resultCode=10000 is success"),
        "ARK_VERSION": ("2024-01-01", "https://docs.byteplus.com/en/docs/ModelArk/2333589"),
        "ARK_SERVICE": ("ark", "https://docs.byteplus.com/en/docs/ModelArk/2333589"),
        "ARK_REGION": ("cn-beijing", "https://docs.byteplus.com/en/docs/ModelArk/2333589"),
        "ARK_ACTIONS": (
            {"CreateAuthSession": "CreateVisualValidateSession", "ExchangeToken": "GetVisualValidateResult"},
            "https://docs.byteplus.com/en/docs/ModelArk/2333589",
        ),
    },
    "volcengine": {
        "VERSION": ("2022-08-31", "https://www.volcengine.com/docs/6973/1209428: Version=2022-08-31"),
        "SERVICE": ("cv", "https://www.volcengine.com/docs/6369/67269: service cv"),
        "REGION": ("cn-north-1", "https://www.volcengine.com/docs/6369/67269: region cn-north-1"),
        "STS_VERSION": ("2018-01-01", "https://www.volcengine.com/docs/6973/1256347: AssumeRole"),
        "RESULT_OK": (10000, "https://www.volcengine.com/docs/6973/1545826"),
        "DEFAULT_EXPIRE": (900, "CertH5ConfigInit expire_duration: default 900"),
        "EXPIRE_RANGE": ((60, 7200), "CertH5ConfigInit expire_duration: [60, 7200] s"),
        "BYTED_TOKEN_WINDOW": (3600, "https://volcengine.com/docs/6973/1209468: byted_token 60 min, single use"),
        "QUERY_KEEP": (3600, "https://volcengine.com/docs/6973/1217703: query data kept 1 h"),
        "MOTIONS": (("0", "1", "2", "3"), "CertH5ConfigInit liveness_config.motion_type"),
        "PUSH_FIELDS": (
            ("source_comp_details", "verify_req_measure_info", "verify_algorithm_base_resp", "byted_token"),
            "CertH5ConfigInit callback_info: every field but result encrypted",
        ),
    },
    "megvii": {
        "GET_TOKEN_PATH": ("/faceid/lite/get_token", "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token"),
        "DO_PATH": ("/faceid/lite/do", "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token"),
        "GET_RESULT_PATH": ("/faceid/lite/get_result", "https://faceid.com/document/faceid-guide-docs/h5_get_result"),
        "RESULT_WINDOW": (DAY, "https://faceid.com/document/faceid-guide-docs/h5_get_result: kept 1 day"),
        "RESULT_PASSED": (1000, "https://faceid.com/document/faceid-guide-docs/h5_get_result: result_code 1000"),
        "PROCEDURE_TYPES": (
            ("video", "still", "flash", "meglive_flash", "selfie", "will"),
            "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token: procedure_type",
        ),
        "LANGUAGE": (
            {"en": "0", "zh": "1", "zh-Hant": "1"},
            "https://faceid.com/document/faceid-guide-docs/oversea_h5_get_token: language 0 English, 1 Chinese",
        ),
        "FINAL_STATUSES": (
            ("OK", "FAILED", "CANCELLED", "TIMEOUT", "WEBRTC_UNSUPPORTED"),
            "https://faceid.com/document/faceid-guide-docs/h5_get_result: status",
        ),
        "PENDING_STATUSES": (
            ("NOT_STARTED", "PROCESSING"),
            "https://faceid.com/document/faceid-guide-docs/h5_get_result: status",
        ),
        "MAX_BIZ_NO": (128, "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token: biz_no 128 bytes"),
        "MAX_BIZ_EXTRA": (4096, "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token: 4096 bytes"),
        "MAX_WEB_TITLE": (32, "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token: web_title 32 bytes"),
        "MAX_IMAGE": (2 * 1024 * 1024, "https://faceid.com/document/faceid-guide-docs/adv_h5_get_token: 2 MB"),
    },
}

#: Facts an emulator keeps to itself (the adapter never reads them): pinned the same way.
EMULATOR: dict[str, dict[str, tuple[Any, str]]] = {
    "megvii": {
        "BIZ_TOKEN_TTL": (3600, "https://faceid.com/document/faceid-guide-docs/app_api_authentication: biz_token 1 h"),
        "RESULT_TTL": (DAY, "https://faceid.com/document/faceid-guide-docs/h5_get_result: kept 1 day"),
        "RESULT_CALLS": (3, "https://faceid.com/document/faceid-guide-docs/h5_get_result: at most 3 calls"),
        "GET_BIZ_TOKEN": ("/faceid/v5/sdk/get_biz_token", "app_api_authentication: the call URL"),
        "VERIFY": ("/faceid/v5/sdk/verify", "https://v2.faceid.com/document/faceid-guide-docs/v5_get_result"),
        "GET_TOKEN": ("/faceid/lite/get_token", "adv_h5_get_token"),
        "DO": ("/faceid/lite/do", "adv_h5_get_token"),
        "GET_RESULT": ("/faceid/lite/get_result", "h5_get_result"),
    },
    "seedance": {
        "CREATE_PATH": ("/v1/real-avatar/auth/session", "https://doc.aimanyi.top/api-467133497.html: interface ⑪"),
        "EXCHANGE_PATH": ("/v1/real-avatar/groups/from-token", "https://doc.aimanyi.top/api-467133497.html: ⑫"),
        "ARK_CREATE": ("CreateVisualValidateSession", "https://docs.byteplus.com/en/docs/ModelArk/2333589"),
        "ARK_RESULT": ("GetVisualValidateResult", "https://docs.byteplus.com/en/docs/ModelArk/2333589"),
        "ARK_QPS": (3, "https://docs.byteplus.com/en/docs/ModelArk/2333589: 3 QPS per account"),
    },
    "tencent": {
        "MAX_GET_BYTES": (32 * 1024, "https://tencentcloud.com/document/product/1140/51177: GET over 32 KB refused"),
        "MAX_TC3_POST_BYTES": (10 * 1024 * 1024, "1140/51177: TC3 POST over 10 MB refused"),
        "V1_MAX_SKEW": (300, "1140/51177: AuthFailure.SignatureExpire past 5 minutes"),
    },
    "volcengine": {
        "CV_ACTIONS": (
            ("CertH5ConfigInit", "CertH5Token", "CertVerifyQuery"),
            "https://www.volcengine.com/docs/6973/1209428, /1209468, /1217703",
        ),
        "STATUS": (
            {10000: 200, 50400: 401, 50402: 404, 50429: 429, 50430: 429, 50500: 500, 50501: 500, 50215: 200},
            "https://www.volcengine.com/docs/6444/69728: 50429/50430 → 429, 50500/50501 → 500 (the rest: our choice)",
        ),
    },
}

KINDS = sorted(SPEC)


def _facts(table: dict[str, dict[str, tuple[Any, str]]]) -> list[tuple[str, str, Any]]:
    return [(kind, name, value) for kind, names in table.items() for name, (value, _) in names.items()]


@pytest.mark.parametrize(("kind", "name", "documented"), _facts(SPEC))
def test_spec_fact_is_the_documented_value(kind: str, name: str, documented: Any) -> None:
    spec = importlib.import_module(f"realauth_server.vendors.{kind}.spec")
    assert getattr(spec, name) == documented


@pytest.mark.parametrize(("kind", "name", "documented"), _facts(EMULATOR))
def test_emulator_fact_is_the_documented_value(kind: str, name: str, documented: Any) -> None:
    emulator = importlib.import_module(f"realauth_server.vendors.{kind}.emulator")
    assert getattr(emulator, name) == documented


@pytest.mark.parametrize("kind", KINDS)
def test_every_fact_an_emulator_reads_is_pinned(kind: str) -> None:
    """Every name an emulator imports from its spec is pinned above (the sandbox's own credentials excepted)."""
    tree = ast.parse((VENDORS / kind / "emulator.py").read_text(encoding="utf-8"))
    read = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "spec" and node.level == 1
        for alias in node.names
    }
    assert read, f"{kind}'s emulator reads no spec?"
    assert sorted(n for n in read if not n.startswith("SANDBOX_") and n not in SPEC[kind]) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_spec_cites_public_sources(kind: str) -> None:
    """A spec names the vendor's public pages, never a path or note a reader of this repository does not have."""
    text = (VENDORS / kind / "spec.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "https://" in doc
    for private in ("seed 0", "vendors.md", "/work/", "/home/"):
        assert private not in text


def test_retention_is_each_vendors_documented_result_window() -> None:
    from realauth_server.vendors.registry import VENDOR_RETENTION

    assert VENDOR_RETENTION == {"seedance": 120, "volcengine": 3600, "megvii": DAY, "tencent": 3 * DAY}


def test_every_vendor_package_has_pinned_facts() -> None:
    """A new vendors/<kind>/ package must add its rows here (else its facts would go unchecked)."""
    packages = sorted(p.name for p in VENDORS.iterdir() if (p / "spec.py").exists())
    assert packages == KINDS == sorted(EMULATOR)
