#!/usr/bin/python3
"""The web page (GET /) in a real browser against a real server.

Starts pixpool on a free loopback port and drives Debian's headless Chromium
through chromium-driver (python3-selenium):
  1. the page loads with its own scripts and Chart.js, the live charts draw;
  2. an uploaded image comes back beside its input with its timing bar;
  3. a bad sigma gets the server's readable error next to the image;
  4. the chain builder works from the keyboard (reorder with Enter);
  5. a dropped file and a pasted URL join the list; the URL the server must
     not fetch (loopback) gets its refusal on its own card; "Download all"
     builds a tar that Python's tarfile reads back;
  6. a race runs two jobs whose progress bars both reach the end, then the
     outcome charts appear with a verdict;
  7. a server with --api-keys: the key field appears, and a key makes the
     calls work;
  8. no console errors beyond the refusals the test provokes;
  9. screenshots at a desktop and a phone width go to --out.
Exit 0 when all hold; 1 with the failed step named otherwise.

Usage: test_page.py --binary build/dev/pixpool --image tests/data/x.jpg --out DIR
       test_page.py --url http://127.0.0.1:8080 --image ... --out DIR
With --url, steps 1-5 and 8-9 run against a server that is already up (for
example the stack's front, scripts/stack); step 7 needs --binary.
"""

import argparse
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

KEY = "web-test-key-0123456789"


class Running:
    """A server someone else started (--url): used as is, never stopped."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def stop(self):
        pass


class Server:
    """pixpool on 127.0.0.1 and a port the OS picks; stopped with SIGTERM."""

    def __init__(self, binary, *flags):
        self.log = tempfile.NamedTemporaryFile(prefix="pixpool-web-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", *flags],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise SystemExit(f"pixpool exited at startup:\n{self.text()}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            raise SystemExit(f"pixpool did not report its port:\n{self.text()}")
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


def browser(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver, what, condition, seconds=30):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def console_errors(driver, allowed):
    """SEVERE console entries, minus those matching a pattern in `allowed`."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(re.search(p, e["message"]) for p in allowed)]


def full_page_screenshot(driver, width, path):
    height = js(driver, "return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(width, min(max(height, 600), 4000))
    js(driver, "window.scrollTo(0, 0)")
    time.sleep(0.3)  # let the charts' resize observers redraw before the picture
    driver.save_screenshot(path)


def test_open_page(driver, server):
    driver.get(server.url + "/")
    wait_for(driver, "Chart.js and the page's modules",
             lambda d: js(d, "return !!window.Chart && document.querySelectorAll('#ops-list li').length === 2"))
    assert driver.find_element(By.ID, "ops-text").get_attribute("value") == "blur:5,contour"
    wait_for(driver, "the live charts' first point",
             lambda d: js(d, "const c = window.Chart.getChart('live-throughput');"
                             "return !!c && c.data.labels.length > 0"))
    # the live figures name the replica they come from
    wait_for(driver, "the replica's name under the live charts",
             lambda d: d.find_element(By.ID, "live-status").text.startswith("Replica "))
    assert driver.find_element(By.ID, "key-panel").get_attribute("hidden") is not None, \
        "the key field shows on a server without keys"


def test_upload(driver, image):
    driver.find_element(By.ID, "file-input").send_keys(os.path.abspath(image))
    wait_for(driver, "the input summary", lambda d: "1 file" in d.find_element(By.ID, "input-summary").text)
    driver.find_element(By.ID, "process-btn").click()
    wait_for(driver, "the result image", lambda d: js(
        d, "const i = document.querySelector('.result.ok img.output');"
           "return !!i && i.complete && i.naturalWidth > 0"))
    stages = js(driver, "return [...document.querySelectorAll('.result.ok .timing-bar .stage')]"
                        ".map(s => s.className)")
    assert any("stage-decode" in s for s in stages) and any("stage-filter" in s for s in stages), stages
    legend = driver.find_element(By.CSS_SELECTOR, ".result.ok .timing-legend").text
    assert "total" in legend and "ms" in legend, legend
    sizes = js(driver, "const [a, b] = document.querySelectorAll('.result.ok img');"
                       "return [a.naturalWidth, a.naturalHeight, b.naturalWidth, b.naturalHeight]")
    assert sizes[:2] == sizes[2:], f"input and result sizes differ: {sizes}"
    link = driver.find_element(By.CSS_SELECTOR, ".result.ok a.download")
    assert link.get_attribute("download").endswith(".jpg"), link.get_attribute("download")
    assert driver.find_element(By.ID, "download-all").is_enabled()


def test_bad_parameter(driver):
    sigma = driver.find_element(By.CSS_SELECTOR, "#ops-list input.sigma")
    sigma.send_keys(Keys.CONTROL, "a")
    sigma.send_keys("500")
    assert driver.find_element(By.ID, "ops-text").get_attribute("value") == "blur:500,contour"
    driver.find_element(By.ID, "process-btn").click()
    message = wait_for(driver, "the error next to the image", lambda d: js(
        d, "const e = document.querySelector('.result.failed .error');"
           "return e ? e.textContent : null"))
    assert "400 invalid_ops" in message and "sigma" in message and "500" in message, message
    # back to a valid chain for the race
    sigma.send_keys(Keys.CONTROL, "a")
    sigma.send_keys("2")
    assert driver.find_element(By.ID, "ops-text").get_attribute("value") == "blur:2,contour"


def test_keyboard_reorder(driver):
    down = driver.find_element(By.CSS_SELECTOR, "#ops-list li[data-op='blur'] button[aria-label='Move blur down']")
    js(driver, "arguments[0].focus()", down)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.find_element(By.ID, "ops-text").get_attribute("value") == "contour,blur:2"
    focused = js(driver, "return document.activeElement.closest('li').dataset.op")
    assert focused == "blur", f"focus did not follow the moved step ({focused})"
    up = driver.find_element(By.CSS_SELECTOR, "#ops-list li[data-op='blur'] button[aria-label='Move blur up']")
    js(driver, "arguments[0].focus()", up)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.find_element(By.ID, "ops-text").get_attribute("value") == "blur:2,contour"


def test_drop_url_and_tar(driver):
    # A drop: the input already shown, redrawn as a JPEG (the page's CSP
    # does not let scripts fetch blob: URLs), as a File in a DataTransfer.
    js(driver, """
        const img = document.querySelector('.result img');
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        canvas.getContext('2d').drawImage(img, 0, 0);
        canvas.toBlob(blob => {
          const dt = new DataTransfer();
          dt.items.add(new File([blob], 'dropped.jpg', {type: 'image/jpeg'}));
          document.getElementById('drop-zone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }, 'image/jpeg', 0.9);""")
    wait_for(driver, "the dropped file", lambda d: "2 files" in d.find_element(By.ID, "input-summary").text)
    # Loopback is refused before any connection (the SSRF guard): the
    # refusal shows on that URL's card, the files still succeed.
    driver.find_element(By.ID, "url-input").send_keys("http://127.0.0.1:9/never.jpg")
    driver.find_element(By.ID, "process-btn").click()
    wait_for(driver, "three cards done", lambda d: js(
        d, "return document.querySelectorAll('.result.ok').length === 2 &&"
           "document.querySelectorAll('.result.failed').length === 1"))
    message = driver.find_element(By.CSS_SELECTOR, ".result.failed .error").text
    assert "source_forbidden" in message, message
    status = driver.find_element(By.ID, "process-status").text
    assert "2 of 3" in status and "1 failed" in status, status
    # "Download all": the tar it hands to the browser (caught on its way to
    # an <a download> click, which saves nothing here), read back by Python.
    js(driver, """
        const make = URL.createObjectURL;
        window.testBlobs = [];
        URL.createObjectURL = (blob) => { window.testBlobs.push(blob); return make(blob); };
        HTMLAnchorElement.prototype.click = function () { window.testDownload = this.download; };""")
    driver.find_element(By.ID, "download-all").click()
    wait_for(driver, "the tar download", lambda d: js(d, "return window.testDownload") == "pixpool-results.tar")
    encoded = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const tar = window.testBlobs.filter(b => b.type === 'application/x-tar').pop();
        tar.arrayBuffer().then(buffer => {
          let s = '';
          new Uint8Array(buffer).forEach(b => { s += String.fromCharCode(b); });
          done(btoa(s));
        });""")
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded))) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["baboon_320x240.jpg", "dropped.jpg"], f"not in the inputs' order: {names}"
        for m in members:
            assert tar.extractfile(m).read(3) == b"\xff\xd8\xff", f"{m.name} is not a JPEG"
    driver.find_element(By.ID, "url-input").clear()
    driver.find_element(By.ID, "url-input").send_keys(" ")


def test_race(driver):
    # the two chosen files (uploaded and dropped), 3 copies each
    copies = driver.find_element(By.ID, "race-copies")
    copies.send_keys(Keys.CONTROL, "a")
    copies.send_keys("3")
    driver.find_element(By.ID, "race-start").click()
    for backend in ("tbb", "process"):
        wait_for(driver, f"the {backend} progress bar to reach the end", lambda d, b=backend: js(
            d, "const p = document.getElementById(arguments[0]);"
               "return p.max === 6 && p.value === 6", f"race-progress-{backend}"), seconds=60)
    wait_for(driver, "the outcome charts", lambda d: js(
        d, "return !document.getElementById('race-outcome').hidden &&"
           "!!window.Chart.getChart('race-chart') && !!window.Chart.getChart('race-latency-chart')"))
    rates = js(driver, "return window.Chart.getChart('race-chart').data.datasets[0].data")
    assert len(rates) == 2 and all(r > 0 for r in rates), rates
    verdict = driver.find_element(By.ID, "race-verdict").text
    assert " won: " in verdict and "on 6 images" in verdict, verdict
    status = driver.find_element(By.ID, "race-status").text
    assert status == "Finished.", status


def test_process_again(driver):
    driver.find_element(By.ID, "process-btn").click()
    wait_for(driver, "the result of the corrected chain", lambda d: js(
        d, "const i = document.querySelector('.result.ok img.output');"
           "return !document.querySelector('.result.failed') && !!i && i.complete && i.naturalWidth > 0"))


def test_api_key(driver, server):
    driver.get(server.url + "/")
    wait_for(driver, "the key field", lambda d: d.find_element(By.ID, "key-panel").is_displayed())
    assert js(driver, "return document.activeElement.id") == "api-key", "the key field is not focused"
    field = driver.find_element(By.ID, "api-key")
    field.send_keys("wrong-key-0123456789")
    field.send_keys(Keys.ENTER)
    wait_for(driver, "the refusal of a wrong key",
             lambda d: "401 unauthorized" in d.find_element(By.ID, "key-status").text)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(KEY)
    field.send_keys(Keys.ENTER)
    wait_for(driver, "the key panel to close", lambda d: not d.find_element(By.ID, "key-panel").is_displayed())
    wait_for(driver, "the live charts with the key",
             lambda d: js(d, "const c = window.Chart.getChart('live-throughput');"
                             "return !!c && c.data.labels.length > 0"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", help="pixpool to start (on a free loopback port)")
    parser.add_argument("--url", help="test this running server instead of starting one")
    parser.add_argument("--image", required=True)
    parser.add_argument("--out", required=True, help="folder for the screenshots")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for stale in ("failure.png", "failure-key.png"):  # from an earlier failed run
        if os.path.exists(os.path.join(args.out, stale)):
            os.unlink(os.path.join(args.out, stale))

    if bool(args.binary) == bool(args.url):
        parser.error("give --binary or --url")
    steps = []
    server = Running(args.url) if args.url else Server(args.binary, "--workers", "2")
    driver = browser(1280, 900)
    try:
        def step(name, fn, *a):
            start = time.monotonic()
            fn(*a)
            steps.append(f"{name} ({time.monotonic() - start:.1f} s)")

        step("page loads, live charts draw", test_open_page, driver, server)
        step("upload shows the result and its timings", test_upload, driver, args.image)
        step("a bad sigma shows the server's error", test_bad_parameter, driver)
        step("the chain reorders from the keyboard", test_keyboard_reorder, driver)
        step("drop, a refused URL and the tar of the results", test_drop_url_and_tar, driver)
        step("a race fills both progress bars and charts the outcome", test_race, driver)
        step("a valid chain works again after the error", test_process_again, driver)
        # The only errors the console may hold: the 400 and 403 this test
        # provoked (Chromium logs every failed response).
        errors = console_errors(driver, [r"/v1/process\?ops=blur%3A500.* 400 ",
                                         r"/v1/process\?.*never\.jpg - .* 403 "])
        assert not errors, "console errors:\n" + "\n".join(errors)
        steps.append("no console errors")
        full_page_screenshot(driver, 1280, os.path.join(args.out, "page-desktop.png"))
        full_page_screenshot(driver, 390, os.path.join(args.out, "page-phone.png"))
        overflow = js(driver, "return document.documentElement.scrollWidth > window.innerWidth + 1")
        assert not overflow, "the page scrolls sideways at phone width"
        steps.append("screenshots at 1280 and 390 px, no sideways scroll on a phone")
    except AssertionError as e:
        print(f"FAILED after: {', '.join(steps) or 'nothing'}\n  {e}", file=sys.stderr)
        driver.save_screenshot(os.path.join(args.out, "failure.png"))
        return 1
    finally:
        driver.quit()
        server.stop()

    if args.url:
        print("web page: " + json.dumps(steps, ensure_ascii=False))
        print(f"screenshots in {args.out}")
        return 0
    keyed = Server(args.binary, "--api-keys", KEY)
    driver = browser(1280, 900)
    try:
        test_api_key(driver, keyed)
        errors = console_errors(driver, [r"/v1/backends - Failed to load resource: .* 401 "])
        assert not errors, "console errors:\n" + "\n".join(errors)
        steps.append("the key field appears on a keyed server and a key works")
    except AssertionError as e:
        print(f"FAILED after: {', '.join(steps)}\n  {e}", file=sys.stderr)
        driver.save_screenshot(os.path.join(args.out, "failure-key.png"))
        return 1
    finally:
        driver.quit()
        keyed.stop()

    print("web page: " + json.dumps(steps, ensure_ascii=False))
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
