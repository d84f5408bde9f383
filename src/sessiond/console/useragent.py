"""A user agent string as a person reads it: "Firefox 128 on Windows".

A dozen rules cover the browsers and systems people sign in from; anything else is shown as
the start of the raw string. A parser library with a regex database (ua-parser) would name
more devices, at the cost of a dependency and its updates, for a label that is only a hint:
the device label the login backend sends says more.
"""

from __future__ import annotations

import re

#: Browsers, most specific first: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"OPR/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
    ("curl", re.compile(r"^curl/(\d+)")),
)
_SYSTEMS = (
    ("iPadOS", re.compile(r"\biPad\b")),
    ("iOS", re.compile(r"\biPhone\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)
_RAW_SHOWN = 60


def readable(user_agent: str | None) -> str:
    """``user_agent`` as "<browser> <major version> on <system>", as far as it can tell."""
    if not user_agent:
        return "Unknown browser"
    browser = next(
        (f"{name} {m.group(1)}" for name, rule in _BROWSERS if (m := rule.search(user_agent))),
        None,
    )
    system = next((name for name, rule in _SYSTEMS if rule.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or f"A browser on {system}"
    return user_agent[:_RAW_SHOWN] + ("…" if len(user_agent) > _RAW_SHOWN else "")
