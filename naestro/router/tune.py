"""Auto-tune: measure any OpenAI-compatible endpoint (latency and throughput vs concurrency and prompt length)
and write the measured p95 into the router's priors, so the SLO rule has a p95 before the first real call.

Also the endpoint check behind ``naestro router check``: unreachable → ``EndpointUnavailable``; a model id the
server does not serve → ``ConfigError`` naming the ids it does serve.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from naestro.endpoints import Endpoint, save_registry_data
from naestro.errors import ConfigError, EndpointUnavailable

__all__ = ["TunePoint", "check_endpoint", "profile_endpoint", "write_prior"]


@dataclass(frozen=True)
class TunePoint:
    concurrency: int
    prompt_tokens: int
    requests: int
    errors: int
    p50_s: float
    p95_s: float
    output_tokens_per_s: float


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def check_endpoint(endpoint: Endpoint, base_url: str, *, api_key: str | None = None, timeout_s: float = 5.0
                   ) -> list[str]:
    """The model ids the server lists; raises when it is unreachable or does not serve ``endpoint.model``."""
    url = base_url.rstrip("/") + "/models"
    try:
        r = httpx.get(url, headers=_headers(api_key), timeout=timeout_s)
        r.raise_for_status()
        served = [str(m["id"]) for m in r.json().get("data", [])]
    except httpx.HTTPStatusError as exc:
        raise EndpointUnavailable(endpoint=endpoint.name, reason=f"GET {url}: HTTP {exc.response.status_code}"
                                  ) from exc
    except httpx.HTTPError as exc:
        raise EndpointUnavailable(endpoint=endpoint.name, reason=f"GET {url}: {exc.__class__.__name__}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EndpointUnavailable(endpoint=endpoint.name, reason=f"GET {url}: not an OpenAI model list") from exc
    if endpoint.model not in served:
        raise ConfigError(f"endpoint {endpoint.name!r}: model {endpoint.model!r} is not served at {base_url} "
                          f"(served: {', '.join(served) or 'none'})", file="models.yaml")
    return served


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _one(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int
               ) -> tuple[float, int] | None:
    start = time.monotonic()
    try:
        r = await client.post(url, json={"model": model, "max_tokens": max_tokens, "temperature": 0,
                                         "messages": [{"role": "user", "content": prompt}]})
        r.raise_for_status()
        tokens = int(r.json()["usage"]["completion_tokens"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return time.monotonic() - start, tokens


async def profile_endpoint(endpoint: Endpoint, base_url: str, *, concurrencies: tuple[int, ...] = (1, 2),
                           prompt_tokens: tuple[int, ...] = (64, 512), requests: int = 4, max_tokens: int = 16,
                           api_key: str | None = None) -> list[TunePoint]:
    """``requests`` chat calls per (concurrency, prompt length), ``concurrency`` at a time."""
    url = base_url.rstrip("/") + "/chat/completions"
    points: list[TunePoint] = []
    async with httpx.AsyncClient(headers=_headers(api_key), timeout=endpoint.timeout_s) as client:
        for n_prompt in prompt_tokens:
            # "word N" pairs tokenize to ~2-3 tokens each on BPE vocabularies; distinct per call, so no
            # prompt-cache hit flatters the numbers.
            for conc in concurrencies:
                results: list[tuple[float, int] | None] = []
                start = time.monotonic()
                for batch in range(0, requests, conc):
                    calls = [_one(client, url, endpoint.model,
                                  f"[{conc}.{batch + k}] " + " ".join(f"w{j}" for j in range(n_prompt // 2))
                                  + "\nSay ok.", max_tokens) for k in range(min(conc, requests - batch))]
                    results.extend(await asyncio.gather(*calls))
                wall = time.monotonic() - start
                ok = [r for r in results if r is not None]
                if not ok:
                    raise EndpointUnavailable(endpoint=endpoint.name, reason=f"all {len(results)} tuning calls "
                                              f"failed at concurrency {conc}, prompt ~{n_prompt} tokens")
                lat = [r[0] for r in ok]
                points.append(TunePoint(conc, n_prompt, len(results), len(results) - len(ok),
                                        round(statistics.median(lat), 3), round(_p(lat, 0.95), 3),
                                        round(sum(r[1] for r in ok) / wall, 2)))
    return points


def write_prior(models_file: Path, endpoint: str, points: list[TunePoint], *, profile_dir: Path | None = None
                ) -> float:
    """Set ``router.priors[endpoint, '*'].p95_latency_s`` (the worst single-request p95 measured) in
    ``models_file``; validated before the file is replaced. Comments in the file are not preserved."""
    single = [p.p95_s for p in points if p.concurrency == 1] or [p.p95_s for p in points]
    p95 = round(max(single), 3)
    try:
        data = yaml.safe_load(models_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(models_file)) from exc
    router = data.setdefault("router", {}) if isinstance(data, dict) else None
    if not isinstance(router, dict):
        raise ConfigError("not a models.yaml mapping with a router section", file=str(models_file))
    priors = router.setdefault("priors", [])
    entry = next((p for p in priors if p.get("endpoint") == endpoint and p.get("kind", "*") == "*"), None)
    if entry is None:
        entry = {"endpoint": endpoint}
        priors.append(entry)
    entry["p95_latency_s"] = p95
    save_registry_data(models_file, data)
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        (profile_dir / f"{endpoint}.json").write_text(json.dumps([asdict(p) for p in points], indent=2))
    return p95
