"""The web page in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver (`make chromium`), against `mxprobe serve` as shipped and the simulated
mail world. A CSV file is uploaded through the page, the job's page shows progress reaching
100 %, its chart the numbers of `GET /v0/bulk/{id}`, its table the results (filtered and
searched), and its CSV button a file identical to the API's CSV. Then again, addresses pasted,
through a second API process (`mxprobe api`, on the same database and workers) with
MXPROBE_HEADER_SECRET, which the page asks for, and MXPROBE_REQUIRE_JOB_TOKEN.

Screenshots of every page are written to docs/screenshots/ (README "The web page")."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.simulator import World
from tests.conftest import world_env
from tests.fixtures.bulk import EXPECTED, fast_bulk_env, summary_of
from tests.fixtures.database import create_database, drop_database
from tests.fixtures.services import ROOT, Service, free_port, healthy, service_env

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "docs" / "screenshots"
SECRET = "web-page-s3cret"
DESKTOP = (1280, 900)
PHONE = (390, 844)

# A few of the standard world's behaviours, each verdict at least once, none slow.
PICKED = (
    "alice@normal.test",
    "nobody@normal.test",
    "anyone@catchall.test",
    "alice@greylist.test",
    "alice@full.test",
    "alice@disabled.test",
    "alice@blocked.test",
    "alice@refused.test",
    "x@nxdomain.test",
    "alice@tls.test",
    "not an email",
)
VERDICT = dict(EXPECTED)
VERDICTS = ("safe", "risky", "invalid", "unknown")


@pytest.fixture(scope="module")
def served(
    database_url: str,
    template_database: str,
    session_world: World,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, list[Service]]]:
    """`mxprobe serve` (API and workers), and a second API with a secret and job tokens on the
    same database: their base URLs, and the services (whose logs must hold no traceback)."""
    logs = tmp_path_factory.mktemp("web_page")
    name = f"mxprobe_web_{uuid.uuid4().hex[:12]}"
    url = create_database(database_url, name, template=template_database)
    env = {**world_env(session_world), **fast_bulk_env()}
    guarded_env = {**env, "MXPROBE_HEADER_SECRET": SECRET, "MXPROBE_REQUIRE_JOB_TOKEN": "true"}
    ports = free_port(), free_port()
    try:
        # Both start at once (the database is a migrated clone: `serve`'s migration is a no-op).
        serve = Service(
            "serve",
            ["-m", "app.cli", "serve", "--port", str(ports[0])],
            env=service_env(url, env),
            logs=logs,
        )
        api = Service(
            "api",
            ["-m", "app.cli", "api", "--port", str(ports[1])],
            env=service_env(url, guarded_env),
            logs=logs,
        )
        try:
            base = healthy(serve, f"http://127.0.0.1:{ports[0]}", within=60)
            guarded = healthy(api, f"http://127.0.0.1:{ports[1]}", within=60)
            yield base, guarded, [serve, api]
        finally:
            api.stop()
            serve.stop()
    finally:
        drop_database(database_url, name)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """Where the browser saves what the page downloads."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads: Path) -> Iterator[WebDriver]:
    """Headless Chromium from Debian's package: no download of any browser or driver."""
    for program in (CHROMIUM, CHROMEDRIVER):
        assert Path(program).exists(), f"{program} is missing: run `make chromium`"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--lang=en-US",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "intl.accept_languages": "en-US",
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver, what: Callable[[WebDriver], Any], *, within: float = 20, message: str = ""
) -> Any:
    return WebDriverWait(driver, within, poll_frequency=0.1).until(what, message)


def by_id(driver: WebDriver, element_id: str) -> Any:
    return driver.find_element(By.ID, element_id)


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(by_id(driver, element_id).text)


def screenshot(driver: WebDriver, name: str, *, phone: bool = False) -> None:
    """The whole page, as wide as a desktop window or a phone (Chromium's own emulation)."""
    width, height = PHONE if phone else DESKTOP
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone},
    )
    try:
        # Nothing is wider than the screen (a phone would scroll the whole page sideways).
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
            },
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def asking(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.getElementById('secret-dialog').open"))


def give_secret(driver: WebDriver, secret: str) -> None:
    """Type `secret` into the page's dialog, which must be asking for it."""
    wait_for(driver, asking, message="the page never asked for the secret")
    by_id(driver, "secret-input").send_keys(secret)
    by_id(driver, "secret-save").click()
    wait_for(driver, lambda d: not asking(d))


def submit(driver: WebDriver, base: str, *, listing: Path | None = None, secret: bool) -> str:
    """Fill in the home page (a file, or the addresses pasted) and submit: the job page's ref.
    With a secret: a wrong one first, which the API refuses when the list is sent; the page
    asks again, and sends the list again with the right one."""
    driver.get(f"{base}/")
    if secret:
        give_secret(driver, "not-the-secret")
    if listing:
        by_id(driver, "file").send_keys(str(listing))
        assert listing.name in text_of(driver, "file-chosen")
    else:
        by_id(driver, "addresses").send_keys("\n".join(PICKED))
    driver.find_element(By.CSS_SELECTOR, "#submit-form summary").click()
    by_id(driver, "hello_name").send_keys("web.mxprobe.test")
    if not secret:
        screenshot(driver, "home")
    by_id(driver, "submit").click()
    if secret:
        wait_for(driver, asking, message="a refused secret was not asked again")
        assert text_of(driver, "secret-problem") == "invalid x-reacher-secret header"
        refused = browser_errors(driver)
        assert len(refused) == 1, refused
        assert "/v0/bulk - Failed to load resource" in refused[0]
        assert "401" in refused[0]
        give_secret(driver, SECRET)
    wait_for(driver, lambda d: "/jobs/" in d.current_url, message="no job page after submit")
    return str(driver.current_url.rsplit("/", 1)[1])


def api(base: str, *, secret: bool) -> httpx.Client:
    headers = {"x-reacher-secret": SECRET} if secret else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def downloaded(folder: Path, name: str) -> bytes:
    path = folder / name
    deadline = time.monotonic() + 20
    while not path.exists() or any(folder.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"{name} was never downloaded: {list(folder.iterdir())}"
        time.sleep(0.1)
    return path.read_bytes()


def browser_errors(driver: WebDriver) -> list[str]:
    """The console's errors: a script's exception, a refused request, a CSP violation."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rows(driver: WebDriver) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, "#results tbody tr"))


def addresses(driver: WebDriver) -> list[str]:
    return [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows(driver)]


def follow(driver: WebDriver, client: httpx.Client, downloads: Path) -> int:
    """On a job's page: progress reaches 100 %, the chart shows the status route's numbers,
    the table every result (filtered, searched), and the CSV button saves the API's CSV.
    The job's id."""
    wait_for(
        driver,
        lambda d: text_of(d, "job-status") == "complete",
        within=30,
        message="the job page never showed the job complete",
    )
    assert text_of(driver, "progress-text") == f"{len(PICKED)} of {len(PICKED)} verified (100 %)"
    assert by_id(driver, "progress").get_attribute("value") == "100"
    assert "addresses/s" in text_of(driver, "rate")
    assert text_of(driver, "eta") == "done"
    job_id = int(text_of(driver, "job-name").removeprefix("#"))
    ref = driver.current_url.rsplit("/", 1)[1]
    status = client.get(f"/v0/bulk/{ref}").json()
    assert status["job_id"] == job_id

    # The chart's numbers are the status route's (and the world's).
    shown = {verdict: int(text_of(driver, f"count-{verdict}")) for verdict in VERDICTS}
    assert shown == {verdict: status["summary"][f"total_{verdict}"] for verdict in VERDICTS}
    expected = summary_of([(address, VERDICT[address]) for address in PICKED])
    assert shown == {name.removeprefix("total_"): n for name, n in expected.items()}

    # The table: every row in input order, then filtered by verdict, then searched.
    wait_for(driver, lambda d: len(rows(d)) == len(PICKED), message="no results shown")
    assert addresses(driver) == list(PICKED)
    Select(by_id(driver, "verdict-filter")).select_by_value("invalid")
    assert {row.get_attribute("data-verdict") for row in rows(driver)} == {"invalid"}
    assert len(rows(driver)) == shown["invalid"]
    Select(by_id(driver, "verdict-filter")).select_by_value("")
    by_id(driver, "search").send_keys("normal.test")
    assert addresses(driver) == ["alice@normal.test", "nobody@normal.test"]
    by_id(driver, "search").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    assert addresses(driver) == list(PICKED)

    # The CSV button saves the API's CSV, byte for byte.
    api_csv = client.get(f"/v0/bulk/{ref}/download", params={"format": "csv"})
    assert api_csv.status_code == 200, api_csv.text
    by_id(driver, "download-csv").click()
    assert downloaded(downloads, f"bulk-{job_id}.csv") == api_csv.content
    return job_id


def no_tracebacks(services: list[Service]) -> None:
    for service in services:
        assert "Traceback" not in service.output(), service.output()


def test_a_file_uploaded_through_the_page_is_followed_and_downloaded(
    browser: WebDriver,
    downloads: Path,
    world: World,
    served: tuple[str, str, list[Service]],
    tmp_path: Path,
) -> None:
    base, _, services = served
    listing = tmp_path / "contacts.csv"
    listing.write_text(
        "name,email\n" + "".join(f"Contact {n},{address}\n" for n, address in enumerate(PICKED)),
        encoding="utf-8",
    )
    with api(base, secret=False) as client:
        ref = submit(browser, base, listing=listing, secret=False)
        job_id = follow(browser, client, downloads)
        assert ref == str(job_id)
        # The file's own columns come first in the CSV the page saved.
        assert downloaded(downloads, f"bulk-{job_id}.csv").startswith(b"name,")
        screenshot(browser, "job")
        screenshot(browser, "job-phone", phone=True)

        browser.get(f"{base}/jobs")
        listed = wait_for(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]'),
            message="the job is not in the list of jobs",
        )
        assert "complete" in listed[0].text
        screenshot(browser, "jobs")

        # From the keyboard: the first Tab reaches the skip link, which leads to the content.
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
        assert focused.get_attribute("class") == "skip"
        focused.send_keys(Keys.ENTER)
        assert browser.switch_to.active_element.get_attribute("id") == "main"

        assert browser_errors(browser) == []
        no_tracebacks(services)


def test_with_a_secret_and_job_tokens_the_page_asks_once_and_names_jobs_by_token(
    browser: WebDriver, downloads: Path, world: World, served: tuple[str, str, list[Service]]
) -> None:
    _, base, services = served
    with api(base, secret=True) as client:
        ref = submit(browser, base, secret=True)  # pasted, this time
        assert len(ref) == 32, "the job's page is not named by its token"
        job_id = follow(browser, client, downloads)

        # The JSON button too: fetched with the secret, saved from memory.
        api_json = client.get(f"/v0/bulk/{ref}/download")
        by_id(browser, "download-json").click()
        assert downloaded(downloads, f"bulk-{job_id}.json") == api_json.content

        # No job list with tokens required: the page lists this tab's jobs.
        browser.get(f"{base}/jobs")
        listed = wait_for(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]'),
            message="the tab's job is not listed",
        )
        assert "MXPROBE_REQUIRE_JOB_TOKEN" in text_of(browser, "jobs-note")
        assert listed[0].find_element(By.TAG_NAME, "a").get_attribute("href").endswith(ref)

        # A new tab has no secret: the page asks for it before anything else.
        browser.execute_script("sessionStorage.clear()")
        browser.get(f"{base}/jobs")
        wait_for(browser, asking, message="a new tab was not asked for the secret")
        screenshot(browser, "secret")

        assert browser_errors(browser) == []
        no_tracebacks(services)


def test_cancelling_from_the_page_shows_every_row_verified_before_it_stopped(
    browser: WebDriver, world: World, served: tuple[str, str, list[Service]]
) -> None:
    """The rows already being verified when the job is cancelled land after it: the table
    shows them as they do, and ends with exactly what the API serves."""
    base, _, services = served
    emails = [f"u{n}@tarpit.test" for n in range(60)]  # a second or so each: no banner
    with api(base, secret=False) as client:
        created = client.post("/v0/bulk", json={"input_type": "array", "input": emails})
        assert created.status_code == 200, created.text
        job_id = created.json()["job_id"]
        browser.get(f"{base}/jobs/{job_id}")
        wait_for(browser, lambda d: text_of(d, "job-status") == "running")
        by_id(browser, "cancel").click()
        assert "Cancel job" in browser.switch_to.alert.text
        browser.switch_to.alert.accept()
        wait_for(browser, lambda d: text_of(d, "job-status") == "cancelled")
        assert text_of(browser, "action-note") == "The job is cancelled."

        def settled(_driver: WebDriver) -> list[dict[str, Any]] | None:
            """The API's results once rows stopped landing (none for 2 s), else None."""
            before = client.get(f"/v0/bulk/{job_id}").json()["total_processed"]
            time.sleep(2.0)
            if client.get(f"/v0/bulk/{job_id}").json()["total_processed"] != before:
                return None
            results: list[dict[str, Any]] = client.get(f"/v0/bulk/{job_id}/download").json()[
                "results"
            ]
            return results

        results = wait_for(browser, settled, within=30, message="rows kept landing")
        wait_for(
            browser,
            lambda d: addresses(d) == [r["input"] for r in results],
            within=10,
            message=f"the table never showed the {len(results)} rows the API serves",
        )
    assert 0 < len(results) < len(emails), len(results)
    assert {row.get_attribute("data-verdict") for row in rows(browser)} <= {"unknown"}
    assert browser_errors(browser) == []
    no_tracebacks(services)
