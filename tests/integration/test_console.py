"""The web console's doors, in-process on real PostgreSQL and Redis: sign-in, cookies, CSRF, tenants, scopes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.config import Settings
from agentbus.domain import ErrorInfo, JobState, TaskState
from agentbus.domain.hitl import HumanRequest
from agentbus.examples import REVIEW_SCHEMA
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import NewJob, NewStep, Repositories, TaskOutcome, step_id


@pytest.fixture
def store(pg_url: str) -> Iterator[Repositories]:
    s = Repositories.from_url(pg_url)
    yield s
    s.close()


@pytest.fixture
def web(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=pg_url, redis_url=redis_url), examples)) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "the page has a CSRF field"
    return m.group(1)


def sign_in(web: TestClient, token: str) -> None:
    form = web.get("/ui/login")
    r = web.post("/ui/login", data={"key": token, "csrf": csrf_of(form.text), "next": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/jobs"


def test_without_a_session_every_page_is_the_sign_in_page_and_never_data(web: TestClient, store: Repositories) -> None:
    store.jobs.create_job(NewJob("echo", {"message": "secret-input"}))
    for path in ["/ui/jobs", "/ui/approvals", "/ui/fleet", "/ui/types", "/ui/memory", "/ui/jobs/x"]:
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
    for path in ["/ui/jobs/live", "/ui/jobs/x/events"]:
        assert web.get(path).status_code == 401
    assert web.post("/ui/jobs/x/cancel", data={"csrf": "x"}).status_code == 401
    page = web.get("/ui/jobs")  # follows to the sign-in form
    assert "Sign in" in page.text and "secret-input" not in page.text


def test_the_session_cookie_is_httponly_strict_and_does_not_hold_the_key(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    cookie = next(c for c in web.cookies.jar if c.name == "ab_console")
    assert token not in cookie.value and token.split("_")[-1] not in cookie.value
    header = web.get("/ui/login").headers  # a fresh login nonce cookie, to look at its attributes
    assert "httponly" in header["set-cookie"].lower() and "samesite=strict" in header["set-cookie"].lower()
    assert "echo" in web.get("/ui/types").text


def test_a_bad_key_or_a_forged_cookie_signs_nobody_in(web: TestClient, store: Repositories) -> None:
    form = web.get("/ui/login")
    bad = web.post("/ui/login", data={"key": "ab_nothere_nope", "csrf": csrf_of(form.text)}, follow_redirects=False)
    assert bad.status_code == 401 and "Not signed in" in bad.text
    _token, rec = store.keys.create_key("default", keys.SCOPES)
    web.cookies.set("ab_console", f"{rec.id}.9999999999.nonce.forged-mac", path="/ui")
    assert web.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_sign_in_without_the_form_token_is_refused(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    r = web.post("/ui/login", data={"key": token, "csrf": "made-up"}, follow_redirects=False)
    assert r.status_code == 403 and not any(c.name == "ab_console" for c in web.cookies.jar)


def test_revoking_the_key_ends_its_console_sessions(web: TestClient, store: Repositories) -> None:
    token, rec = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    assert web.get("/ui/jobs", follow_redirects=False).status_code == 200
    store.keys.revoke_key(rec.id)
    assert web.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_state_changing_forms_need_the_csrf_token(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    job, _ = store.jobs.create_job(NewJob("slow", {"seconds": 30}))
    r = web.post(f"/ui/jobs/{job.id}/cancel", data={})
    assert r.status_code == 403 and "CSRF" in r.text
    assert store.jobs.get_job(job.id).state == JobState.SUBMITTED
    page = web.get(f"/ui/jobs/{job.id}")
    r = web.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and store.jobs.get_job(job.id).state == JobState.CANCELLED


def test_tenant_b_sees_none_of_tenant_a(web: TestClient, store: Repositories) -> None:
    a_job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "tenant-a-topic"}, tenant="a"))
    step = NewStep(a_job.id, 0, "human", "ask_human", TaskState.PENDING)
    ask = HumanRequest.build("tenant-a-question", data={"x": 1}, schema=REVIEW_SCHEMA)
    store.steps.record_replay(a_job.id, [step], None, asks=[(0, ask)])
    (a_approval,), _ = store.approvals.list_approvals(tenant="a")
    a_state = store.jobs.get_job(a_job.id).state
    token_b, _ = store.keys.create_key("b", keys.SCOPES)
    sign_in(web, token_b)
    assert a_job.id not in web.get("/ui/jobs").text
    assert "tenant-a-question" not in web.get("/ui/approvals").text
    assert web.get(f"/ui/jobs/{a_job.id}").status_code == 404
    assert web.get(f"/ui/jobs/{a_job.id}/events").status_code == 404
    assert web.get(f"/ui/jobs/{a_job.id}/live").status_code == 404
    csrf = csrf_of(web.get("/ui/approvals").text)
    r = web.post(f"/ui/approvals/{a_approval.id}", data={"csrf": csrf, "decision": "approve", "title": "t"})
    assert r.status_code == 404 and store.approvals.get_approval(a_approval.id).status == "pending"
    r = web.post(f"/ui/jobs/{a_job.id}/cancel", data={"csrf": csrf})
    assert r.status_code == 404 and store.jobs.get_job(a_job.id).state == a_state


def test_pages_need_the_scopes_the_api_routes_need(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", ("jobs:read",))
    sign_in(web, token)
    assert web.get("/ui/jobs").status_code == 200
    assert web.get("/ui/fleet").status_code == 403  # GET /workers needs admin
    assert web.get("/ui/memory").status_code == 403
    csrf = csrf_of(web.get("/ui/types/echo").text)
    r = web.post("/ui/types/echo", data={"csrf": csrf, "message": "hi"})
    assert r.status_code == 403 and store.jobs.list_jobs()[0] == []


def test_submitting_from_a_type_form_validates_like_the_api(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    csrf = csrf_of(web.get("/ui/types/square").text)
    bad = web.post("/ui/types/square", data={"csrf": csrf, "x": "seven"})
    assert bad.status_code == 422 and store.jobs.list_jobs()[0] == []
    ok = web.post("/ui/types/square", data={"csrf": csrf, "x": "7"}, follow_redirects=False)
    assert ok.status_code == 303
    (job,), _ = store.jobs.list_jobs()
    assert ok.headers["location"] == f"/ui/jobs/{job.id}" and job.input == {"x": 7}


def test_sign_in_only_redirects_within_the_console(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    form = web.get("/ui/login")
    r = web.post(
        "/ui/login",
        data={"key": token, "csrf": csrf_of(form.text), "next": "https://evil.example/ui/x"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/ui/jobs"


def _rows(html: str) -> list[str]:
    return re.findall(r'href="/ui/jobs/([0-9a-f]+)"><code>', html)


def test_the_jobs_page_filters_by_status_type_and_time_newest_first_with_cursor_paging(
    web: TestClient, store: Repositories
) -> None:
    ids = [store.jobs.create_job(NewJob("echo", {"message": str(i)}))[0].id for i in range(55)]
    ids.append(store.jobs.create_job(NewJob("square", {"x": 1}))[0].id)
    for i, job_id in enumerate(ids):  # one job a minute from 2026-01-01 00:00 UTC
        store.db.execute_sql("UPDATE ab_jobs SET created_at = %s WHERE id = %s", (1767225600 + 60 * i, job_id))
    store.jobs.cancel_job(ids[3])
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    first = web.get("/ui/jobs").text
    assert _rows(first) == list(reversed(ids))[:50]
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None
    assert _rows(web.get(older.group(1).replace("&amp;", "&")).text) == list(reversed(ids))[50:]
    assert _rows(web.get("/ui/jobs?type=square").text) == [ids[55]]
    assert _rows(web.get("/ui/jobs?status=cancelled").text) == [ids[3]]
    window = web.get("/ui/jobs", params={"from": "2026-01-01T00:10", "to": "2026-01-01T00:20"}).text
    assert _rows(window) == list(reversed(ids[10:20]))
    assert web.get("/ui/jobs", params={"from": "yesterday"}).status_code == 400


def test_a_job_with_many_steps_opens_a_page_of_them_at_a_time(web: TestClient, store: Repositories) -> None:
    job, _ = store.jobs.create_job(NewJob("noop_map", {"n": 250}))
    steps = [
        NewStep(job.id, i, "task", "noop", TaskState.QUEUED, args={"i": i}, queue="cpu", route_reason="cpu task")
        for i in range(250)
    ]
    store.steps.record_replay(job.id, steps, None)
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    first = web.get(f"/ui/jobs/{job.id}").text
    seqs = [int(s) for s in re.findall(r'<td data-label="#">(\d+)</td>', first)]
    assert seqs == list(range(100)) and "(250)" in first
    second = web.get(f"/ui/jobs/{job.id}?after=99").text
    assert [int(s) for s in re.findall(r'<td data-label="#">(\d+)</td>', second)] == list(range(100, 200))


def _ask(store: Repositories, tenant: str = "default") -> tuple[str, str]:
    job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}, tenant=tenant))
    step = NewStep(job.id, 0, "human", "ask_human", TaskState.PENDING)
    store.steps.record_replay(job.id, [step], None, asks=[(0, HumanRequest.build("Publish?", schema=REVIEW_SCHEMA))])
    return job.id, f"{job.id}-0"


def test_an_answer_that_fails_the_schema_is_shown_on_the_form_and_not_recorded(
    web: TestClient, store: Repositories
) -> None:
    _, approval_id = _ask(store)
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    csrf = csrf_of(web.get("/ui/approvals").text)
    r = web.post(f"/ui/approvals/{approval_id}", data={"csrf": csrf, "decision": "approve", "priority": "2"})
    assert r.status_code == 422 and "title" in r.text and 'value="2"' in r.text  # what was typed stays
    assert store.approvals.get_approval(approval_id).status == "pending"
    ok = web.post(
        f"/ui/approvals/{approval_id}",
        data={"csrf": csrf, "decision": "approve", "title": "T", "priority": "2", "comment": "fine", "by": "ann"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    rec = store.approvals.get_approval(approval_id)
    assert (rec.status, rec.input, rec.comment, rec.answered_by) == (
        "approved",
        {"title": "T", "priority": 2},
        "fine",
        "ann",
    )


def test_answering_needs_the_approvals_write_scope(web: TestClient, store: Repositories) -> None:
    _, approval_id = _ask(store)
    token, _ = store.keys.create_key("default", ("jobs:read", "jobs:write"))
    sign_in(web, token)
    csrf = csrf_of(web.get("/ui/approvals").text)
    r = web.post(f"/ui/approvals/{approval_id}", data={"csrf": csrf, "decision": "reject"})
    assert r.status_code == 403 and store.approvals.get_approval(approval_id).status == "pending"


def test_submit_again_makes_a_new_job_with_the_same_input(web: TestClient, store: Repositories) -> None:
    old, _ = store.jobs.create_job(NewJob("echo", {"message": "again"}))
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    csrf = csrf_of(web.get(f"/ui/jobs/{old.id}").text)
    r = web.post(f"/ui/jobs/{old.id}/resubmit", data={"csrf": csrf}, follow_redirects=False)
    new_id = r.headers["location"].rsplit("/", 1)[1]
    assert r.status_code == 303 and new_id != old.id
    new = store.jobs.get_job(new_id)
    assert (new.type, new.input, new.tenant) == ("echo", {"message": "again"}, "default")


def test_the_fleet_page_shows_devices_current_calls_and_lost_workers(
    web: TestClient, store: Repositories, redis_url: str
) -> None:
    from agentbus.bus import Fleet, connect

    fleet = Fleet(connect(redis_url), 30)
    gpu = {"kind": "gpu", "name": "H100", "memory_total": 80 * 2**30}
    fleet.heartbeat(
        "gpu-1",
        {
            "role": "worker-gpu",
            "queues": ["gpu.80gb", "gpu"],
            "device": gpu,
            "concurrency": 4,
            "calls": [{"task_id": "job42-3", "name": "embed", "attempt": 2, "started": 1.0}],
        },
    )
    fleet.heartbeat(
        "cpu-1",
        {
            "role": "worker-cpu",
            "queues": ["cpu"],
            "device": {"kind": "cpu"},
            "current": {"task_id": "job43-0", "name": "fetch", "attempt": 1},
        },
    )
    fleet.mark_lost("cpu-9", {"id": "cpu-9", "role": "worker-cpu", "queues": ["cpu"], "host": "h9"})
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    html = web.get("/ui/fleet").text.split("<tbody>", 1)[1]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<strong>([\w-]+)</strong>.*?</tr>", html, re.S)}
    assert set(rows) == {"gpu-1", "cpu-1", "cpu-9"}
    assert "GPU H100 80.0 GiB" in rows["gpu-1"] and "1 / 4" in rows["gpu-1"]
    assert 'href="/ui/jobs/job42">embed</a>' in rows["gpu-1"] and "attempt 2" in rows["gpu-1"]
    assert 'href="/ui/jobs/job43">fetch</a>' in rows["cpu-1"]
    assert "s-lost" in rows["cpu-9"] and "idle" in rows["cpu-9"]


def test_console_pages_are_charged_to_the_keys_rate_limit_like_api_calls(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, rate_read="0.01/s:4")
    token, _ = store.keys.create_key("default", keys.SCOPES)
    with TestClient(create_app(settings, examples)) as web:
        sign_in(web, token)  # the sign-in form itself is not charged: no key yet
        codes = [web.get("/ui/jobs").status_code for _ in range(6)]
        assert codes[:4] == [200] * 4 and codes[4:] == [429, 429]
        api = web.get("/jobs", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 429  # one budget for the key, pages and API calls alike


def test_failed_sign_ins_are_limited_per_address(pg_url: str, redis_url: str) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, authfail_rate="0.01/s:3")
    with TestClient(create_app(settings, examples)) as web:
        codes = []
        for _ in range(5):
            csrf = csrf_of(web.get("/ui/login").text)
            codes.append(web.post("/ui/login", data={"key": "ab_guess_wrong", "csrf": csrf}).status_code)
        assert codes[:3] == [401] * 3 and codes[-1] == 429


def test_ui_without_a_slash_leads_to_the_console(web: TestClient) -> None:
    r = web.get("/ui", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs"


def test_the_job_page_shows_the_error_with_its_traceback_escaped(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("default", keys.SCOPES)
    sign_in(web, token)
    job, _ = store.jobs.create_job(NewJob("always_fails", {"reason": "nope"}))
    tb = 'Traceback (most recent call last):\n  File "t.py", line 3, in always_fails\nValueError: <script>x</script>\n'
    store.steps.record_replay(job.id, [NewStep(job.id, 0, "task", "always_fails", TaskState.QUEUED, args={})], None)
    store.steps.mark_running([(step_id(job.id, 0), 1)], "w1")
    store.steps.record_outcomes(
        [TaskOutcome(step_id(job.id, 0), 1, TaskState.FAILED, error=ErrorInfo("ValueError", "<script>x</script>", tb))]
    )
    store.steps.record_replay(job.id, [], JobState.FAILED, error=ErrorInfo("ValueError", "<script>x</script>", tb))

    page = web.get(f"/ui/jobs/{job.id}").text
    assert '<details id="job-traceback">' in page
    assert page.count("line 3, in always_fails") == 2  # under the job's error and under its step's
    assert "<script>x</script>" not in page and "ValueError: &lt;script&gt;x&lt;/script&gt;" in page
