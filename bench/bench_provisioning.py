"""Benchmark: authenticated adapter config fetches per second against `softswitch run`.

What it measures is what a mass reboot costs (a power cut, a firmware push, a DHCP change):
many adapters fetching their own config at once. Each fetch is the full path an adapter
takes -- authentication (URL token, or HTTP Digest: two round trips), reading the adapter and
its lines, decrypting the SIP secrets, rendering the template, and writing the fetch record
(a database write per fetch) -- against a real `softswitch run` on SQLite or PostgreSQL.

    .venv/bin/python bench/bench_provisioning.py                       # SQLite, token URLs
    .venv/bin/python bench/bench_provisioning.py --auth digest --clients 32
    .venv/bin/python bench/bench_provisioning.py --database postgresql+asyncpg://postgres@127.0.0.1/bench

With ``--database`` the database must be empty or a softswitch database; to run again on
the same database give the same ``--key-file`` (secrets are sealed with it; the import
upserts the adapters). Prints one summary line per run and exits non-zero when any fetch
failed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from switch.sip import digest  # noqa: E402
from harness.softswitch import SwitchProcess, create_token, http_get_json, import_file  # noqa: E402


def _document(adapters: int) -> dict[str, Any]:
    """``adapters`` two-line adapters, alternating Cisco SPA112 and Grandstream HT802."""
    customers = []
    for i in range(adapters):
        model = "spa112" if i % 2 == 0 else "ht802"
        mac = f"{'000e08' if model == 'spa112' else 'c074ad'}{i:06x}"
        customers.append({
            "id": f"B{i:05d}",
            "name": f"Bench customer {i}",
            "adapters": [{
                "mac": mac,
                "model": model,
                "lines": [
                    {"port": 1, "number": f"2{2 * i:07d}", "password": f"Bench-secret-{2 * i:06d}"},
                    {"port": 2, "number": f"2{2 * i + 1:07d}", "password": f"Bench-secret-{2 * i + 1:06d}"},
                ],
            }],
        })
    return {"customers": customers}


def _macs(doc: dict[str, Any]) -> list[str]:
    return [c["adapters"][0]["mac"] for c in doc["customers"]]


async def _fetch_token(session: aiohttp.ClientSession, base: str, target: dict[str, Any]) -> bool:
    async with session.get(base + target["path"], headers={"User-Agent": target["ua"]}) as r:
        await r.read()
        return r.status == 200


async def _fetch_digest(session: aiohttp.ClientSession, base: str, target: dict[str, Any]) -> bool:
    path = target["digest_path"]
    headers = {"User-Agent": target["ua"]}
    async with session.get(base + path, headers=headers) as r:
        await r.read()
        if r.status != 401:
            return False
        values = r.headers.getall("WWW-Authenticate")
    challenge = digest.choose_challenge([c for v in values for c in digest.parse_challenges(v)])
    headers["Authorization"] = digest.DigestClient(target["user"], target["password"]).authorize(
        challenge, "GET", path)
    async with session.get(base + path, headers=headers) as r:
        await r.read()
        return r.status == 200


async def _load(base: str, targets: list[dict[str, Any]], clients: int, duration: float, auth: str
                ) -> tuple[int, int, list[float], float]:
    fetch = _fetch_token if auth == "token" else _fetch_digest
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm up: one fetch per adapter (first fetches also warm the server's caches)
        for t in targets[: min(len(targets), clients)]:
            await fetch(session, base, t)
        deadline = time.monotonic() + duration

        async def worker(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                ok = await fetch(session, base, targets[i % len(targets)])
                latencies.append(time.perf_counter() - t0)
                counts["ok" if ok else "failed"] += 1
                i += clients

        start = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.monotonic() - start
    return counts["ok"], counts["failed"], latencies, elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default="", help="SQLAlchemy URL (default: a fresh SQLite file)")
    p.add_argument("--adapters", type=int, default=200)
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    p.add_argument("--auth", choices=["token", "digest"], default="token")
    p.add_argument("--key-file", default="", help="key for secrets at rest (default: a fresh one)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-prov-") as tmp:
        work = Path(tmp)
        db_url = args.database or f"sqlite+aiosqlite:///{work / 'bench.db'}"
        key_file = Path(args.key_file) if args.key_file else work / "softswitch.key"
        doc = _document(args.adapters)
        t = time.monotonic()
        import_file(db_url, doc, key_file=key_file, cwd=work)
        token = create_token(db_url, key_file=key_file, cwd=work)
        print(f"imported {args.adapters} adapters in {time.monotonic() - t:.1f}s", flush=True)
        with SwitchProcess(db_url=db_url, workdir=work, key_file=key_file,
                           extra_args=["--qualify-interval", "0"]) as switch:
            targets = []
            for mac in _macs(doc):
                status, prof = http_get_json(f"{switch.http_url}/api/v1/adapters/{mac}/profile-url", token=token)
                if status != 200:
                    print(f"profile-url for {mac}: {status} {prof}", file=sys.stderr)
                    return 1
                ua = (f"Cisco/SPA112-1.4.1(SR5) ({mac.upper()})(CCQ0001)" if mac.startswith("000e08")
                      else f"Grandstream Model HW HT802 V2.1A SW 1.0.17.5 DevId {mac}")
                targets.append({
                    "path": "/cfg/" + prof["profile_url"].split("/cfg/", 1)[1],
                    "digest_path": "/cfg/" + prof["digest"]["url"].split("/cfg/", 1)[1],
                    "user": prof["digest"]["username"], "password": prof["digest"]["password"], "ua": ua,
                })
            ok, failed, lat, elapsed = asyncio.run(
                _load(switch.http_url, targets, args.clients, args.duration, args.auth))
            rss = switch.rss_kib()
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    if not lat:
        print("no fetch completed", file=sys.stderr)
        return 1
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(
        f"provisioning bench: db={backend} auth={args.auth} adapters={args.adapters} clients={args.clients} "
        f"-> {ok / elapsed:.0f} authenticated config fetches/s ({ok} ok, {failed} failed in {elapsed:.1f}s), "
        f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms, switch RSS {rss // 1024} MiB",
        flush=True,
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
