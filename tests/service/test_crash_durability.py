"""What the service acknowledged survives a SIGKILL right after the 2xx: catalogue updates and shoppers' events."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

TOKEN = "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`towersearch serve INDEX` in a child process; ``kill()`` sends SIGKILL (no shutdown, no flush)."""

    def __init__(self, index, events):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TOWERSEARCH_ADMIN_TOKEN": TOKEN}
        cmd = [sys.executable, "-m", "towersearch.cli", "serve", str(index), "--port", str(self.port),
               "--events", str(events)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def served(tiny_index, tmp_path):
    servers = []

    def start():
        servers.append(Served(tiny_index, tmp_path / "events.db"))
        return servers[-1]

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.kill()


def test_acknowledged_update_and_events_survive_sigkill(served, tmp_path):
    from towersearch.events import EventStore

    server = served()
    new = {"product_id": "p9", "name": "Blue Corn Tortilla Chips", "brand": "Zeta", "category": "snacks > chips"}
    response = httpx.put(f"{server.url}/admin/products", json={"products": [new]}, headers={"X-Admin-Token": TOKEN},
                         timeout=120)  # fmt: skip
    assert response.status_code == 200, response.text
    body = httpx.get(f"{server.url}/search", params={"q": "blue corn tortilla chips", "k": 3}).json()
    shown = [r["product_id"] for r in body["results"]]
    events = [{"search_id": body["search_id"], "product_id": pid, "event": "click"} for pid in shown]
    stored = httpx.post(f"{server.url}/events", json={"events": events}, timeout=30)
    assert stored.status_code == 200 and stored.json() == {"stored": len(shown)}
    server.kill()  # right after the 2xx: no shutdown hook, no flush

    with EventStore(tmp_path / "events.db", create=False) as store:
        assert store.counts()["events"] == len(shown)
        assert {e["product_id"] for e in store.get_search(body["search_id"])["events"]} == set(shown)
    again = served()
    assert httpx.get(f"{again.url}/products/p9").json()["name"] == "Blue Corn Tortilla Chips"
