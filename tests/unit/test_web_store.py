"""The web page on the real settings table (appliance.store): what the owner sets survives a
restart of the daemon."""

from __future__ import annotations

import json

from appliance.store import Store
from tests.web_harness import PASSWORD, csrf_in, running_web


def test_first_run_password_and_name_are_kept_in_the_store_across_a_restart(tmp_path):
    store = Store(tmp_path)
    try:
        with running_web(password=None, settings=store.settings) as web:
            client = web.browser()
            token = csrf_in(client.get(web.url + "/setup").text)
            reply = client.post(web.url + "/setup", allow_redirects=False, data={
                "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token})
            assert reply.status_code == 303
            token = csrf_in(client.get(web.url + "/settings").text)
            client.post(web.url + "/settings/name", data={"name": "Grandma's line",
                                                          "csrf_token": token})
    finally:
        store.close()
    on_disk = (tmp_path / "settings.json").read_text()
    assert PASSWORD not in on_disk
    assert json.loads(on_disk)["settings"]["1"]["admin_password"].startswith("scrypt$")

    restarted = Store(tmp_path)
    try:
        with running_web(password=None, settings=restarted.settings) as web:
            client = web.browser()
            assert client.get(web.url + "/setup", allow_redirects=False).headers[
                "Location"].endswith("/login")
            web.login(client)
            assert "<title>Status · Grandma&#039;s line</title>" in client.get(web.url + "/").text
    finally:
        restarted.close()
