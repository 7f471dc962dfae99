"""Outcomes of the ByteDance/Volcengine identity H5 page (h5-v2.kych5.com), shared by the Seedance and Volcengine
emulators: Seedance's H5Link is that same page (BytePlus ModelArk real-human asset guide,
https://docs.byteplus.com/en/docs/ModelArk/2333589).

The page ends by redirecting with ``resultCode``: 10000 on success, else one of the client-side codes of
https://www.volcengine.com/docs/6973/1545826 (40001-40011 device and network, 41000-41009 liveness). ``verdict`` is
the ``verify_algorithm_base_resp.status_code`` the Volcengine query and push carry for it: the server's liveness code
210312 where the server judged (https://volcengine.com/docs/6973/1166609), else the client code itself (the
server saw no face to judge, as CertVerifyQuery's own 50215/41000 "not finished" does).
"""

from __future__ import annotations

from .base import ABANDON, EXPIRE, PASS, Outcome, Outcomes


def _client(
    name: str, code: int, zh: str, hant: str, en: str, aliases: tuple[str, ...] = (), **data: object
) -> Outcome:
    return Outcome(
        name,
        str(code),
        {"zh": zh, "zh-Hant": hant, "en": en},
        aliases=aliases,
        data={"result_code": code, "verdict": code, "message": en, **data},
    )


KYC_H5 = Outcomes(
    [
        Outcome(
            "pass",
            "10000",
            {"zh": "通过", "zh-Hant": "通過", "en": "Pass"},
            PASS,
            data={"result_code": 10000, "algorithm": 0, "verdict": 0, "message": "SUCCESS"},
        ),
        _client(
            "liveness_failed",
            41007,
            "不通过:活体检测失败",
            "不通過:活體檢測失敗",
            "Fail: liveness check failed",
            ("fail",),  # what the pre-outcome scripts' "fail" always produced
            algorithm=210312,
            verdict=210312,
            message="server action liveness failed",
        ),
        _client("no_face", 41002, "未检测到人脸(超时)", "未偵測到人臉(逾時)", "No face detected (timed out)"),
        _client("action_timeout", 41003, "动作超时", "動作逾時", "Action timed out"),
        _client("wrong_action", 41006, "动作错误", "動作錯誤", "Wrong action"),
        _client("face_changed", 41008, "检测中人脸变化", "檢測中人臉變化", "The face changed during the check"),
        _client("poor_quality", 41009, "图像质量不合格", "影像品質不合格", "Image quality too low"),
        _client("camera_permission", 40002, "未授予摄像头权限", "未授予相機權限", "Camera permission denied"),
        _client("no_camera", 40008, "没有摄像头", "沒有相機", "No camera"),
        _client("no_webrtc", 40001, "浏览器不支持 WebRTC", "瀏覽器不支援 WebRTC", "Browser without WebRTC"),
        Outcome(
            "abandon",
            "",
            {"zh": "离开页面", "zh-Hant": "離開頁面", "en": "Leave the page"},
            ABANDON,
        ),
        Outcome(
            "expire",
            "",
            {"zh": "等到链接过期", "zh-Hant": "等到連結過期", "en": "Let the link expire"},
            EXPIRE,
        ),
    ]
)


def redirect_params(outcome: Outcome) -> dict[str, str]:
    """The redirect query the page adds for a finished outcome (without ``bytedToken``)."""
    params = {"resultCode": str(outcome.data["result_code"])}
    if "algorithm" in outcome.data:  # client-side failures: no algorithm ran, so no algorithm code
        params["algorithmBaseRespCode"] = str(outcome.data["algorithm"])
    params["reqMeasureInfoValue"] = "1" if outcome.kind == PASS else "0"
    return params
