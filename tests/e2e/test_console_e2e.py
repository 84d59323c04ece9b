"""The web console in a real browser (Playwright driving Debian's chromium) against the real roles.

One cluster serves the whole module (the roles take seconds to start); each test signs in with a
fresh browser context. Set ``CONSOLE_SCREENSHOTS=docs/img`` to write the README's screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg2
import pytest
import redis

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
WIDE = {"width": 1280, "height": 860}
NARROW = {"width": 390, "height": 844}


def _admin() -> Any:
    u = urlparse(os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    conn = psycopg2.connect(
        host=u.hostname,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.path.lstrip("/") or "postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn, u


@pytest.fixture(scope="module")
def console_cluster(
    pg_template: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """API, orchestrator and one CPU worker on a database and Redis db of this module's own."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    admin, u = _admin()
    name = f"agentbus_console_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    redis_url = os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/15")
    redis.Redis.from_url(redis_url).flushdb()
    c = Cluster(u._replace(path=f"/{name}").geturl(), redis_url, tmp_path_factory.mktemp("console"))
    try:
        c.orchestrator()
        c.worker("w1")
        c.api()
        failed_before = request.session.testsfailed
        yield c
        if request.session.testsfailed > failed_before:
            print(c.log_tails())
    finally:
        c.stop()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
        redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="module")
def browser(console_cluster: Cluster) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def base(c: Cluster) -> str:
    return f"http://127.0.0.1:{c.port}/ui"


def signed_in(browser: Any, c: Cluster, key: str, viewport: dict[str, int] = WIDE, axe: bool = False) -> Any:
    # axe is injected as a script tag, which the console's CSP (script-src 'self') rightly refuses
    page = browser.new_context(viewport=viewport, bypass_csp=axe).new_page()
    page.set_default_timeout(30_000)
    page.goto(base(c) + "/jobs")
    assert page.url.startswith(base(c) + "/login")  # no session: the sign-in page, never data
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base(c) + "/jobs")
    return page


@pytest.fixture
def page(browser: Any, console_cluster: Cluster) -> Iterator[Any]:
    p = signed_in(browser, console_cluster, console_cluster.key)
    yield p
    p.context.close()


def badge(page: Any, scope: str = "#job-status") -> str:
    text: str = page.locator(f"{scope} .badge").inner_text()
    return text


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=False)


def test_submit_a_job_and_watch_it_finish_live(page: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    watcher = page.context.new_page()
    watcher.goto(base(c) + "/jobs")
    page.goto(base(c) + "/types/nap")
    page.get_by_label("seconds").fill("1.5")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(base(c) + "/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    assert badge(page) in ("submitted", "running", "waiting human")
    # no reload: the job's event stream brings the finished state and the result into the page
    page.locator("#job-status .s-succeeded").wait_for()
    assert '"slept"' in page.locator("#result").inner_text()
    # the jobs list, opened before the job existed, shows it finished without a reload either
    watcher.locator(f"#job-rows a[href$='{job_id}']").wait_for()
    watcher.locator("#job-rows tr", has=watcher.locator(f"a[href$='{job_id}']")).locator(".s-succeeded").wait_for()
    shot(watcher, "jobs")


def test_a_tasks_streamed_output_appears_on_the_job_page_in_order(page: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    job = c.client.submit("chatter", {"n": 12, "every": 0.05, "delay": 1.0})
    page.goto(f"{base(c)}/jobs/{job.id}")
    out = page.locator("#output")
    page.locator("#job-status .s-succeeded").wait_for()
    page.wait_for_function("document.getElementById('output').textContent.includes('t11')")
    lines = [line for line in out.inner_text().splitlines() if line.strip()]
    assert [json.loads(line)["token"] for line in lines] == [f"t{i}" for i in range(12)]


def test_a_jobs_steps_and_sub_agents(page: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    job = c.client.submit("parent", {"n": 3})
    c.wait(job.id)
    page.goto(f"{base(c)}/jobs/{job.id}")
    rows = page.locator("table.steps tbody tr")
    assert rows.count() == 2  # the sub-agent, then the echo task
    assert "map_reduce" in rows.nth(0).inner_text() and "echo" in rows.nth(1).inner_text()
    task_row = rows.nth(1).inner_text()
    assert "w1" in task_row and "cpu" in task_row and "succeeded" in task_row
    assert page.locator(".tree li").first.inner_text().startswith("map_reduce")
    shot(page, "job")
    page.locator(".tree a").first.click()  # into the sub-agent: its own three tasks
    page.wait_for_url(f"{base(c)}/jobs/{job.id}-*")
    assert page.locator("table.steps tbody tr").count() == 3
    assert "parent job" in page.locator(".crumbs").inner_text()


def test_answer_an_approval_from_the_inbox_and_the_job_resumes(
    page: Any, browser: Any, console_cluster: Cluster
) -> None:
    c = console_cluster
    job = c.client.submit("editorial", {"topic": "herons", "reviewers": ["alice"]})
    wait_until(lambda: c.client.approvals(status="pending", job=job.id).approvals, 30, "the question")
    other = signed_in(browser, c, c.key)  # a second person, same inbox
    for p in (page, other):
        p.goto(base(c) + "/approvals?assignee=alice")
    card = page.locator("article.approval", has_text="herons")
    assert '"revision": 0' in card.locator("pre.json").inner_text()  # the data the agent attached
    shot(page, "approvals")
    card.get_by_label("title").fill("Herons")
    card.get_by_label("Comment").fill("lovely")
    card.get_by_role("button", name="Approve").click()
    page.locator("#answered-notice").wait_for()
    assert c.wait(job.id)["result"]["published"] == "Herons"  # the job resumed and finished
    # the second person answers the same question a moment later: a 409, explained
    ocard = other.locator("article.approval", has_text="herons")
    ocard.get_by_label("title").fill("Egrets")
    ocard.get_by_role("button", name="Approve").click()
    lost = other.locator("#lost-race")
    lost.wait_for()
    assert "already approved" in lost.inner_text() and "lovely" in lost.inner_text()
    other.context.close()
    page.goto(f"{base(c)}/jobs/{job.id}")
    assert badge(page) == "succeeded"


def test_cancel_a_running_job(page: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    job = c.client.submit("long_haul", {"tasks": 1, "seconds": 60})
    wait_until(lambda: c.client.job(job.id).status == "running", 30, "the job to run")
    page.goto(f"{base(c)}/jobs/{job.id}")
    page.get_by_role("button", name="Cancel job").click()
    page.locator("#job-status .s-cancelled").wait_for()
    assert c.client.job(job.id).status == "cancelled"


def test_the_fleet_shows_the_worker(page: Any, console_cluster: Cluster) -> None:
    page.goto(base(console_cluster) + "/fleet")
    row = page.locator("table.fleet tbody tr", has_text="w1")
    assert "live" in row.inner_text() and "cpu" in row.inner_text()
    shot(page, "fleet")


def test_tenant_b_sees_none_of_tenant_as_objects(browser: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    job = c.client.submit("echo", {"message": "tenant-a-only"})
    c.wait(job.id)
    b = signed_in(browser, c, c.new_key("tenant-b"))
    assert "No jobs match." in b.locator("#job-rows").inner_text()
    b.goto(base(c) + "/approvals?status=approved")
    assert b.locator("article.approval").count() == 0
    response = b.goto(f"{base(c)}/jobs/{job.id}")
    assert response.status == 404 and "tenant-a-only" not in b.content()
    b.context.close()


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {v['nodes'][0]['target']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_axe_and_fits_a_phone(browser: Any, console_cluster: Cluster) -> None:
    c = console_cluster
    c.client.memory_store("notes", [{"text": "herons wade in shallow water"}, {"text": "owls hunt at night"}])
    job = c.client.submit("map_reduce", {"n": 2})
    c.wait(job.id)
    pages = [
        "/jobs",
        f"/jobs/{job.id}",
        "/approvals?status=approved",
        "/approvals",
        "/fleet",
        "/types",
        "/types/editorial",
        "/memory",
        "/memory/notes?q=birds+in+water",
    ]
    problems: dict[str, list[str]] = {}
    for viewport, paths in ((WIDE, pages), (NARROW, ["/jobs", "/approvals?status=approved", f"/jobs/{job.id}"])):
        p = signed_in(browser, c, c.key, viewport, axe=True)
        for path in paths:
            p.goto(base(c) + path)
            found = _axe(p)
            if found:
                problems[f"{viewport['width']}px {path}"] = found
            if viewport is NARROW:  # usable on a phone: nothing wider than the screen
                width = p.evaluate("document.documentElement.scrollWidth")
                assert width <= NARROW["width"] + 1, f"{path} is {width}px wide at 390px"
        if viewport is WIDE:
            p.goto(base(c) + "/types/editorial")
            shot(p, "types")
            p.goto(base(c) + "/memory/notes?q=birds+in+water")
            shot(p, "memory")
        else:
            p.goto(base(c) + "/jobs")
            shot(p, "jobs-phone")
        p.context.close()
    login = browser.new_context(viewport=WIDE, bypass_csp=True).new_page()
    login.goto(base(c) + "/login")
    if found := _axe(login):
        problems["login"] = found
    shot(login, "login")
    login.context.close()
    assert not problems, problems
