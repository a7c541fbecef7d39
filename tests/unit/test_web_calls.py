"""The call log page over real HTTP: newest first, filters by day, line, caller and status,
a page at a time."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from appliance.store import CallRecord
from appliance.web.calls_page import PAGE_SIZE
from tests.web_live_harness import running_live


@pytest.fixture
def web(tmp_path):
    with running_live(tmp_path) as harness:
        harness.lines.update({"gsm0": {"state": "idle", "detail": {}},
                              "gsm1": {"state": "idle", "detail": {}}})
        yield harness


def local(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").astimezone().timestamp()


def log_call(web, sid: str, started: float, **fields) -> CallRecord:
    record = CallRecord(sid=sid, line=fields.pop("line", "gsm0"),
                        from_=fields.pop("from_", "+15557654321"), to="+15551230000",
                        started=started, **fields)
    return web.store.calls.save(record)


def shown(page: str) -> list[str]:
    return re.findall(r'<tr data-sid="([^"]+)"', page)


@pytest.fixture
def calls(web):
    log_call(web, "CA1", local("2024-05-01"), status="completed", answered=local("2024-05-01"),
             ended=local("2024-05-01") + 125, conference="family")
    log_call(web, "CA2", local("2024-05-02"), line="gsm1", from_="+15551112222", status="busy",
             reason="busy")
    log_call(web, "CA3", local("2024-05-03"), status="no-answer")
    log_call(web, "CA4", local("2024-05-03", 18), from_="+447700900123", status="completed",
             answered=local("2024-05-03", 18), ended=local("2024-05-03", 18) + 5)


def test_calls_are_listed_newest_first_with_their_facts(web, calls):
    page = web.login().get(web.url + "/calls")
    assert page.status_code == 200
    assert shown(page.text) == ["CA4", "CA3", "CA2", "CA1"]
    row = page.text[page.text.index('data-sid="CA1"'):]
    row = row[:row.index("</tr>")]
    assert "+15557654321" in row and "2:05" in row and "family" in row and "Completed" in row
    assert "01 May 2024, 12:00:00" in row
    assert 'data-label="From"' in row  # phone layout: each cell names itself


def test_filters_by_day_range_line_caller_and_status(web, calls):
    client = web.login()

    def ask(**query) -> list[str]:
        reply = client.get(web.url + "/calls", params=query)
        assert reply.status_code == 200, reply.text
        return shown(reply.text)

    assert ask(**{"from": "2024-05-02", "to": "2024-05-03"}) == ["CA4", "CA3", "CA2"]
    assert ask(to="2024-05-01") == ["CA1"]
    assert ask(line="gsm1") == ["CA2"]
    assert ask(caller="4477") == ["CA4"]
    assert ask(status="completed") == ["CA4", "CA1"]
    assert ask(status="completed", caller="555") == ["CA1"]
    page = client.get(web.url + "/calls", params={"line": "gsm1"}).text
    assert '<option value="gsm1" selected>' in page
    assert 'No calls match' in client.get(web.url + "/calls", params={"caller": "999"}).text


def test_bad_filters_are_explained_not_crashed_on(web, calls):
    client = web.login()
    reply = client.get(web.url + "/calls", params={"from": "yesterday", "status": "exploded"})
    assert reply.status_code == 400
    assert "“From” must be a day such as 2024-05-31." in reply.text
    assert "There is no status “exploded”." in reply.text
    reply = client.get(web.url + "/calls", params={"from": "2024-05-03", "to": "2024-05-01"})
    assert reply.status_code == 400 and "is after the" in reply.text


def test_a_long_log_is_shown_a_page_at_a_time(web):
    start = local("2024-05-01")
    for n in range(PAGE_SIZE + 5):
        log_call(web, f"CA{n:03d}", start + n * 60, line="gsm1" if n % 2 else "gsm0")
    client = web.login()
    first = client.get(web.url + "/calls").text
    assert len(shown(first)) == PAGE_SIZE and shown(first)[0] == f"CA{PAGE_SIZE + 4:03d}"
    older = re.search(r'href="([^"]+)" id="older"', first).group(1).replace("&amp;", "&")
    second = client.get(web.url + older).text
    assert shown(second) == ["CA004", "CA003", "CA002", "CA001", "CA000"]
    assert 'id="older"' not in second and "Newest calls" in second
    # Filters carry over to the next page.
    odd = client.get(web.url + "/calls", params={"line": "gsm1"}).text
    assert all(int(sid[2:]) % 2 for sid in shown(odd))


def test_the_call_log_needs_a_session(web):
    assert web.browser().get(web.url + "/calls", allow_redirects=False).status_code == 303
