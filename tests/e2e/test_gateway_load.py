"""Many pages at once: 500 WebSockets to one gateway and one worker, each sending its own request ids;
every answer must come back, once, to the page that asked."""

import asyncio
import json
import random

import websockets


def test_500_concurrent_websockets_no_lost_or_misrouted_message(make_gateway):
    # The worker serves 64 connections by default and the gateway 48 pages of a user; here both must
    # take 500. All 500 come from one address at once, which the per-address share of unauthenticated
    # connections would otherwise thin out (that share has its own tests).
    g = make_gateway("--worker-args=--max-connections=600", "--max-pages-per-user=600",
                     "--max-unauthenticated=1000", "--max-unauthenticated-per-address=1000",
                     # One user, one address, 500 pages: room for them beside the share kept for others.
                     "--max-connections=2048", "--max-connections-per-user=600",
                     "--max-connections-per-address=1000")
    cookie = g.session()
    url = g.base_url.replace("http", "ws") + "ws"
    n_pages, per_page = 500, 20

    async def page(i, start):
        async with websockets.connect(url, origin=g.origin, extra_headers={"Cookie": cookie},
                                      open_timeout=60, ping_interval=None, max_queue=None) as ws:
            await start.wait()
            ids = [f"p{i}-r{k}" for k in range(per_page)]
            for rid in ids:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": "worker:info"}))
                if random.random() < 0.3:
                    await asyncio.sleep(0)
            got = []
            while len(got) < per_page:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                assert msg.get("result", {}).get("name") == "helios-worker", msg
                got.append(msg["id"])
            # Every id once, in order, and only this page's.
            assert got == ids, (i, got[:3])
            return len(got)

    async def run():
        start = asyncio.Event()
        tasks = []
        for i in range(n_pages):
            tasks.append(asyncio.create_task(page(i, start)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        # Everyone connected before anyone sends; a page that could not connect fails the test
        # rather than keeping it waiting.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while g.metrics()["helios_gateway_open_websockets"] < n_pages:
            failed = [t for t in tasks if t.done()]
            if failed:
                await failed[0]
                raise AssertionError("a page finished before the start")
            assert loop.time() < deadline, g.metrics()["helios_gateway_open_websockets"]
            await asyncio.sleep(0.1)
        start.set()
        return await asyncio.gather(*tasks)

    counts = asyncio.run(run())
    assert sum(counts) == n_pages * per_page
    m = g.metrics()
    assert m["helios_gateway_websockets_total"] == n_pages
    assert m["helios_gateway_messages_total{direction=\"to_browser\"}"] == n_pages * per_page
    assert m["helios_gateway_workers_lost_total"] == 0
    assert m["helios_gateway_worker_starts_total"] == 1
