"""The web console in a real headless Chromium: the acceptance of issue 16.

A user sees their devices and signs one out (with the mouse, and from the keyboard alone); an
administrator forces a sign-out and the user's open page shows it within a second; a form
posted from another origin is refused; an inline script injected into a console page does not
run (CSP); every control has an accessible name.

One real sessiond (``sessiond serve``: the embedded mode, cookie mode ``refresh``) on a
loopback port and one headless Chromium serve the whole module. Chromium is Debian's, driven
by Debian's chromedriver through Selenium, which is told both paths so that Selenium Manager
never downloads anything. Chromium treats ``http://127.0.0.1`` and ``http://localhost`` as
secure contexts, so the ``__Host-`` cookies (``Secure``) work over plain HTTP there. Each
host name has its own cookie jar: the user is signed in on ``127.0.0.1`` and the
administrator on ``localhost``, in one browser.

``CONSOLE_SCREENSHOTS=<dir>`` makes the tests save the screenshots of ``docs/images``.
"""

from __future__ import annotations

import http.server
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from support.secrets import REGISTRY
from support.servers import SESSIOND, ServerProcess

pytestmark = pytest.mark.slow

#: The program behind Debian's ``chromium`` wrapper script, which itself needs tools (grep,
#: find, expr) that the suite's PATH leaves out.
CHROMIUM = Path("/usr/lib/chromium/chromium")
CREDENTIAL = re.compile(r"one-time service credential \(all scopes; shown once\): (sdc_\S+)")
REFRESH_COOKIE = "__Host-sessiond-refresh"
#: Flags of a quiet headless Chromium on a machine with no network but loopback.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
)


#: Their DEBUG records quote the cookies and credentials the tests hand around (the secret
#: scan would rightly flag them); sessiond's own records are all kept.
for _chatty in ("selenium", "httpcore"):
    logging.getLogger(_chatty).setLevel(logging.INFO)


@dataclass(frozen=True)
class Sessiond:
    """The running sessiond: its port and its one-time credential (every scope)."""

    port: int
    credential: str

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def sign_in(self, subject: str, label: str, user_agent: str) -> tuple[str, str]:
        """Sign ``subject`` in as a login backend does: its session id and refresh token."""
        answer = httpx.post(
            f"{self.url()}/v1/sessions",
            json={
                "subject": subject,
                "device": {"label": label, "user_agent": user_agent, "ip": "192.0.2.10"},
            },
            headers={"Authorization": f"Bearer {self.credential}"},
        )
        assert answer.status_code == 201, answer.text
        token = answer.cookies[REFRESH_COOKIE]
        REGISTRY.register("refresh token", token)
        return token.partition(".")[0], token

    def session_exists(self, sid: str) -> bool:
        answer = httpx.get(
            f"{self.url()}/v1/sessions/{sid}",
            headers={"Authorization": f"Bearer {self.credential}"},
        )
        return answer.status_code == 200


@pytest.fixture(scope="module")
def sessiond() -> Iterator[Sessiond]:
    with ServerProcess(SESSIOND, env={"SESSIOND_COOKIE_MODE": "refresh"}) as server:
        found = CREDENTIAL.search(server.output())
        assert found is not None, server.output()
        REGISTRY.register("service credential", found.group(1))
        yield Sessiond(int(server.url.rsplit(":", 1)[1]), found.group(1))


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver_path = shutil.which("chromedriver")
    assert driver_path, "./dev test installs chromium-driver"
    assert CHROMIUM.exists(), "./dev test installs chromium"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="sessiond-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshots() -> Path | None:
    """Where to save screenshots, if ``CONSOLE_SCREENSHOTS`` asks for them."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    return Path(folder) if folder else None


CHROME_ON_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_ON_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WAIT = 5.0


def wait(browser: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(browser, WAIT, poll_frequency=0.02)


def use_session(browser: webdriver.Chrome, sessiond: Sessiond, refresh_token: str) -> None:
    """Give the browser the refresh cookie a login backend would have forwarded to it."""
    browser.get(f"{sessiond.url()}/console/static/console.css")  # on the host, to set its cookie
    browser.add_cookie(
        {
            "name": REFRESH_COOKIE,
            "value": refresh_token,
            "path": "/",
            "secure": True,
            "httpOnly": True,
            "sameSite": "Strict",
        }
    )


def open_devices(browser: webdriver.Chrome, sessiond: Sessiond) -> None:
    """Open "Your devices" and wait until it follows revocations live."""
    browser.get(f"{sessiond.url()}/console/devices")
    listening(browser)


def listening(browser: webdriver.Chrome) -> None:
    """Wait until the page follows revocations live (its list reloaded once, so settled)."""
    wait(browser).until(
        lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("data-live") == "listening"
    )


def devices(browser: webdriver.Chrome) -> dict[str, str]:
    """The devices listed: session id -> the device's text."""
    return {
        item.get_attribute("data-session") or "": item.text
        for item in browser.find_elements(By.CSS_SELECTOR, "li.device")
    }


def unlabelled(browser: webdriver.Chrome) -> list[str]:
    """The controls of the page that have no accessible name."""
    controls = browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), button, a")
    return [str(e.get_attribute("outerHTML"))[:80] for e in controls if not e.accessible_name]


def sign_in_admin(browser: webdriver.Chrome, sessiond: Sessiond) -> None:
    """Sign the administrator in on the ``localhost`` host name (a cookie jar of its own)."""
    browser.get(f"{sessiond.url('localhost')}/console/admin")
    field = browser.find_element(By.ID, "credential")  # redirected to the sign-in form
    field.send_keys(sessiond.credential)
    field.submit()
    wait(browser).until(lambda b: b.find_elements(By.ID, "health-title"))


def test_a_user_sees_two_devices_and_signs_the_other_one_out(
    browser: webdriver.Chrome, sessiond: Sessiond, screenshots: Path | None
) -> None:
    mine, token = sessiond.sign_in("alice", "Work laptop", CHROME_ON_MAC)
    other, _ = sessiond.sign_in("alice", "Phone", FIREFOX_ON_ANDROID)
    use_session(browser, sessiond, token)
    open_devices(browser, sessiond)

    listed = devices(browser)
    assert listed.keys() == {mine, other}
    assert "This device" in listed[mine]
    assert "This device" not in listed[other]
    assert "Chrome 131 on macOS" in listed[mine]
    assert "Firefox 133 on Android" in listed[other]
    if screenshots:
        browser.save_screenshot(str(screenshots / "console-devices.png"))

    browser.find_element(By.CSS_SELECTOR, f"li[data-session='{other}'] button").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".notice"))
    listening(browser)
    assert devices(browser).keys() == {mine}
    assert not sessiond.session_exists(other)
    assert sessiond.session_exists(mine)


def test_a_forced_sign_out_reaches_the_users_open_page_within_a_second(
    browser: webdriver.Chrome, sessiond: Sessiond, screenshots: Path | None
) -> None:
    mine, token = sessiond.sign_in("bob", "Home PC", CHROME_ON_MAC)
    sessiond.sign_in("bob", "iPhone", SAFARI_ON_IPHONE)
    use_session(browser, sessiond, token)
    open_devices(browser, sessiond)
    user = browser.current_window_handle
    # Note, in the page, when it shows that its user is signed out.
    browser.execute_script(
        "new MutationObserver(() => { if (document.querySelector('[data-signed-out]')"
        " && !window.signedOutAt) { window.signedOutAt = Date.now(); } })"
        ".observe(document.body, {childList: true, subtree: true});"
    )

    browser.switch_to.new_window("window")
    sign_in_admin(browser, sessiond)
    browser.find_element(By.ID, "subject").send_keys("bob")
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "tr[data-session]"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-session]")) == 2
    assert unlabelled(browser) == []
    if screenshots:
        browser.save_screenshot(str(screenshots / "console-admin.png"))
    forced_at = time.time() * 1000
    browser.find_element(
        By.CSS_SELECTOR, "form[action='/console/admin/sign-out-subject'] button"
    ).click()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".notice"))
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-session]")
    trail = browser.find_element(By.ID, "trail-title").find_element(By.XPATH, "..").text
    assert "subject.revoked" in trail
    assert "embedded" in trail  # the name of the administrator's credential

    browser.switch_to.window(user)
    signed_out_at = wait(browser).until(lambda b: b.execute_script("return window.signedOutAt"))
    assert signed_out_at - forced_at < 1000
    assert not sessiond.session_exists(mine)
    browser.switch_to.window(browser.window_handles[-1])
    browser.close()
    browser.switch_to.window(user)


def test_a_device_is_signed_out_from_the_keyboard_alone(
    browser: webdriver.Chrome, sessiond: Sessiond
) -> None:
    mine, token = sessiond.sign_in("erin", "Laptop", CHROME_ON_MAC)
    other, _ = sessiond.sign_in("erin", "Tablet", SAFARI_ON_IPHONE)
    use_session(browser, sessiond, token)
    open_devices(browser, sessiond)
    assert unlabelled(browser) == []
    target = browser.find_element(By.CSS_SELECTOR, f"li[data-session='{other}'] button")
    assert target.accessible_name == "Sign out Tablet"
    for _ in range(20):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.switch_to.active_element == target:
            break
    else:
        pytest.fail("Tab never reached the Tablet's sign-out button")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".notice"))
    listening(browser)
    assert devices(browser).keys() == {mine}


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page of another origin that posts a console form (with a leaked CSRF token)."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def attacker() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_a_form_posted_from_another_origin_is_refused(
    browser: webdriver.Chrome,
    sessiond: Sessiond,
    attacker: http.server.ThreadingHTTPServer,
    host: str,
) -> None:
    mine, token = sessiond.sign_in(f"carol@{host}", "Laptop", CHROME_ON_MAC)
    other, _ = sessiond.sign_in(f"carol@{host}", "Phone", FIREFOX_ON_ANDROID)
    use_session(browser, sessiond, token)
    open_devices(browser, sessiond)
    leaked = browser.find_element(By.NAME, "csrf").get_attribute("value")
    # On 127.0.0.1 the attacker is same-site (another port): the SameSite=Strict cookies go
    # along and the token is right, so only the Fetch Metadata check stands in its way.
    _Attacker.page = (
        f'<form method="post" action="{sessiond.url()}/console/devices/sign-out-others">'
        f'<input type="hidden" name="csrf" value="{leaked}">'
        '<button id="go" type="submit">Win a prize</button></form>'
    ).encode()
    browser.get(f"http://{host}:{attacker.server_address[1]}/")
    browser.find_element(By.ID, "go").click()
    wait(browser).until(lambda b: "/console/devices/sign-out-others" in b.current_url)

    assert "urn:sessiond:problem:csrf" in browser.page_source
    assert sessiond.session_exists(other)
    open_devices(browser, sessiond)
    assert devices(browser).keys() == {mine, other}


def test_an_injected_inline_script_does_not_run(
    browser: webdriver.Chrome, sessiond: Sessiond
) -> None:
    _, token = sessiond.sign_in("dave", "<script>window.injected = 1</script>", CHROME_ON_MAC)
    use_session(browser, sessiond, token)
    open_devices(browser, sessiond)
    assert "<script>window.injected = 1</script>" in devices(browser).popitem()[1]
    # Escaping kept the label from being markup; the CSP is the second wall: a script
    # element put into the page (as a missed escape would) is refused and reported.
    browser.execute_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.violations.push(e.violatedDirective));"
        "const s = document.createElement('script');"
        "s.textContent = 'window.injected = 2';"
        "document.body.appendChild(s);"
        "const d = document.createElement('div');"
        "d.setAttribute('onclick', 'window.injected = 3');"
        "document.body.appendChild(d); d.click();"
    )
    violations = wait(browser).until(
        lambda b: b.execute_script("return window.violations.length > 1 && window.violations")
    )
    assert set(violations) == {"script-src-elem", "script-src-attr"}
    assert browser.execute_script("return window.injected") is None
