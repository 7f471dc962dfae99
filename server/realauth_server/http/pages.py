"""The HTML pages a browser sees from realauth's HTTP side, in the page language: a refused landing's error page,
and the chrome the sandbox's simulated vendor pages share (emulators/base.py builds on :func:`page`)."""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web

#: Page languages: realauth's locales (zh, zh-Hant, en); every page string below exists in each.
LANGS = ("zh", "zh-Hant", "en")


#: A text in every page language, keyed by language.
Text = Mapping[str, str]


def text(lng: str, value: Text | str) -> str:
    """``value`` in the page language (English when a vendor shows no such language)."""
    if isinstance(value, str):
        return value
    return value.get(lng) or value["en"]


def page_lang(lng: str) -> str:
    return lng if lng in LANGS else "en"


#: Title of every error page.
UNAVAILABLE: Text = {"zh": "认证不可用", "zh-Hant": "認證無法使用", "en": "Verification unavailable"}

#: Messages the error pages show, in every page language.
MESSAGES: dict[str, Text] = {
    "invalid_link": {
        "zh": "此认证链接无效。",
        "zh-Hant": "此認證連結無效。",
        "en": "This verification link is not valid.",
    },
    "expired": {
        "zh": "此认证链接已过期。",
        "zh-Hant": "此認證連結已過期。",
        "en": "This verification link has expired.",
    },
    "completed": {
        "zh": "此认证已完成。",
        "zh-Hant": "此認證已完成。",
        "en": "This verification was already completed.",
    },
    "bad_target": {
        "zh": "此认证无法返回该地址。",
        "zh-Hant": "此認證無法返回該地址。",
        "en": "This verification cannot return to that address.",
    },
}


#: Font stacks that hold CJK glyphs on common systems; a machine with none of them shows boxes for Chinese text
#: (docs/providers.md: install e.g. fonts-noto-cjk). Every button also carries its ASCII name and vendor code.
FONTS = {
    "zh": '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", '
    '"WenQuanYi Micro Hei", ',
    "zh-Hant": '"PingFang TC", "Microsoft JhengHei", "Noto Sans CJK TC", "Noto Sans TC", ',
    "en": "",
}


def page(lng: str, title: str, body: str, status: int = 200) -> web.Response:
    lng = page_lang(lng)
    page = f"""<!doctype html>
<html lang="{lng}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", {FONTS[lng]}sans-serif; max-width: 34rem; margin: 2rem auto;
       padding: 0 1rem; }}
a.btn {{ display: inline-block; padding: .6rem 1rem; margin: .3rem .3rem 0 0; border-radius: .4rem; color: #fff;
        text-decoration: none; font-size: 1rem; background: #cf222e; }}
a.btn.pass {{ background: #1a7f37; }} a.btn.abandon, a.btn.expire {{ background: #57606a; }}
a.btn code {{ display: block; font-size: .75rem; opacity: .85; }}
small, footer {{ color: #666; }} footer {{ margin-top: 2rem; font-size: .85rem; }}
</style></head>
<body>
{body}
</body></html>"""
    return web.Response(status=status, text=page, content_type="text/html")


def error_page(status: int, message: Text | str, lng: str = "en") -> web.Response:
    """A plain error page in the page language (``message``: a text, a key of MESSAGES, or plain English)."""
    lng = page_lang(lng)
    if isinstance(message, str) and message in MESSAGES:
        message = MESSAGES[message]
    title = text(lng, UNAVAILABLE)
    return page(lng, title, f"<h1>{html.escape(title)}</h1><p>{html.escape(text(lng, message))}</p>", status)
