"""GET /metrics read with prometheus_client's own parser after real traffic through every
front door and real dispatcher passes against the modem simulator: the counts match what
happened, and only metrics_allow addresses or API tokens may read it."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support_dispatch import site
from support_web import add_token, api, base_url, web_settings

from smss.spooler.protocol import format_record


def scrape(url: str, **headers: str) -> dict:
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_really_happened(tmp_path):
    from conftest import ServerProcess

    with site(tmp_path, status_report_delay=0.05) as s:
        folder = tmp_path / "server"
        folder.mkdir()
        server = ServerProcess(folder, s.db_url, {"web": web_settings(folder)})
        server.start()
        try:
            url, token = base_url(server), add_token(server.config_path, "app")
            # the TCP door: three stored, two refused (a bad number, an empty text)
            tcp = server.send(b"".join(format_record(phone, text) + b"\n" for phone, text in [
                ("+420777123456", "nope"), ("608337726", "one"), ("12", "bad number"),
                ("608337726", "Dlouhá zpráva " * 10), ("608337726", " ")]))
            assert [line.split()[0] for line in tcp] == ["OK", "OK", "ERR", "OK", "ERR"]
            with api(url, token) as client:  # the API: two stored, one refused
                assert client.post("/api/v1/messages", json={"messages": [
                    {"phone": "608337726", "text": "two"}, {"phone": "777123456", "text": "x"},
                    {"phone": "abc", "text": "y"}]}).status_code == 422
            kannel = httpx.get(f"{url}/cgi-bin/sendsms", params={  # Kannel's door: one
                "username": "app", "password": token, "to": "608337726", "text": "three"})
            assert kannel.status_code == 202
            before = scrape(url)
            assert value(before, "smss_queue_messages", state="due") == 6
            assert value(before, "smss_queue_oldest_due_age_seconds") > 0
            s.sim.control.set_fault("cms_error", code=1, count=1)  # the first fails for good
            assert s.run().returncode == 0, s.log()
            s.sim.control.inject("+420777123456", "Odpověď")

            def reports_applied():
                assert s.run().returncode == 0, s.log()
                pending = s.rows("sms", "COUNT(*)", "WHERE delivery = 'pending'")[0][0]
                return pending == 0 and s.rows("rcv", "COUNT(*)")[0][0] == 1

            deadline = time.monotonic() + 60
            while not reports_applied():
                assert time.monotonic() < deadline, "reports and the SMS not in"
                time.sleep(0.1)
            after = scrape(url)
        finally:
            server.stop()
    (transport,) = {row[0] for row in s.rows("sms", "transport", "WHERE status = 'sent'")}
    parts = sum(row[0] for row in s.rows("sms", "parts", "WHERE status = 'sent'"))
    assert parts == 7  # five messages, one of them in three parts

    records = "smss_records_total"
    assert value(after, records, door="tcp", result="ok", code="") == 3
    assert value(after, records, door="tcp", result="refused", code="422") == 2
    assert value(after, records, door="api", result="ok", code="") == 2
    assert value(after, records, door="api", result="refused", code="422") == 1
    assert value(after, records, door="kannel", result="ok", code="") == 1

    assert value(after, "smss_messages_total", transport=transport, status="sent") == 5
    assert value(after, "smss_messages_total", transport=transport, status="failed") == 1
    assert value(after, "smss_parts_sent_total", transport=transport) == parts
    assert value(after, "smss_delivery_reports_total", transport=transport,
                 outcome="delivered") == parts
    assert value(after, "smss_received_total", transport=transport) == 1

    assert value(after, "smss_send_delay_seconds_count", transport=transport) == 5
    assert value(after, "smss_send_delay_seconds_bucket", transport=transport, le="+Inf") == 5
    assert value(after, "smss_send_delay_seconds_sum", transport=transport) > 0
    buckets = [v for (name, labels), v in after.items()
               if name == "smss_send_delay_seconds_bucket"]
    assert buckets == sorted(buckets)  # cumulative

    assert value(after, "smss_queue_messages", state="due") == 0
    assert value(after, "smss_queue_oldest_due_age_seconds") == 0
    assert value(after, "smss_transport_up", transport=transport) == 1
    assert value(after, "smss_transport_state", transport=transport, state="ok") == 1
    assert ("smss_transport_signal_dbm", (("transport", transport),)) in after
    assert abs(value(after, "smss_transport_last_sent_timestamp_seconds",
                     transport=transport) - time.time()) < 600
    assert abs(value(after, "smss_transport_updated_timestamp_seconds",
                     transport=transport) - time.time()) < 600


def test_only_allowed_addresses_or_tokens_read_metrics(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path, metrics_allow="10.0.0.0/8"))
    url, token = base_url(server), add_token(server.config_path, "prometheus")
    answer = httpx.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert "smss_" not in answer.text
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"},
                     timeout=30).status_code == 401
    samples = scrape(url, Authorization=f"Bearer {token}")
    assert value(samples, "smss_queue_messages", state="due") == 0
    # a logged-in browser cookie is no credential here either
    assert httpx.get(f"{url}/metrics", cookies={"smss_session": "x"},
                     timeout=30).status_code == 401


def test_loopback_reads_metrics_without_a_token_by_default(server_factory, tmp_path):
    server = server_factory(web=web_settings(tmp_path))
    samples = scrape(base_url(server))
    assert ("smss_queue_messages", (("state", "due"),)) in samples
    assert any(name.startswith("process_") for name, _ in samples)
