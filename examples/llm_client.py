"""An LLM API client that respects rate limits instead of getting its key banned.

A fake "LLM API" (the standard library's ``http.server``, in a thread, on a free port of
127.0.0.1) rate-limits each API key with a token bucket: past the limit it answers ``429``
with a ``Retry-After``. Like real providers, it bans a key that keeps calling while it was
told to wait: the tenth request that ignores a ``Retry-After`` gets the key banned (``403``).

1. A naive client retries every 429 at once: its key is banned within milliseconds.
2. The careful client wraps each request in ``retry_api_call`` (which waits at least the
   ``Retry-After``) around a ``CircuitBreaker(failure_threshold=5, recovery_timeout=60)``:
   every prompt is answered, and no request ignores a ``Retry-After``.
3. The key's quota runs out (``429`` with ``Retry-After: 3600``). The retry does not wait an
   hour (the hint is over the preset's 60 s ``max_retry_after``), and after 5 refusals the
   breaker opens: the application's next 25 prompts are refused locally, without a request.
4. 60 s later the quota is back; one trial call closes the circuit.

The server's rate limit is scaled down (a bucket of 3 requests refilled 4 times a second), and
the breaker runs on a ``FakeClock`` so its 60 s recovery timeout passes at once: the run takes a
few seconds. Run it (``pip install httpx`` first)::

    python examples/llm_client.py
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

try:
    import httpx
except ImportError:  # not in the README's first virtualenv: say what to install, no traceback
    sys.exit("llm_client.py needs httpx: pip install 'httpx>=0.27'")

from resilience import CircuitBreaker, CircuitOpenError, CircuitState, get_timeout, retry_api_call
from resilience.testing import FakeClock

BUCKET_SIZE = 3  # requests a key may send in a burst
REFILL_PER_SECOND = 4.0  # tokens added back to a key's bucket each second
BAN_AFTER = 10  # requests ignoring a Retry-After that get a key banned
QUOTA_RETRY_AFTER = 3600.0  # what the API says when a key's quota is spent


@dataclass
class Account:
    """What the fake API knows about one API key."""

    tokens: float = BUCKET_SIZE
    refilled_at: float = 0.0
    wait_until: float = 0.0  # requests before this ignore the last Retry-After
    requests: int = 0
    answered: int = 0
    limited: int = 0  # 429 answers
    ignored: int = 0  # requests that came before their Retry-After
    banned: bool = False


class FakeLLMAPI:
    """A chat-completions endpoint with per-key rate limits, quotas and bans."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accounts: dict[str, Account] = {}
        self.quota_spent = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                api.handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
                """Keep the example's output to what it prints itself."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def decide(self, key: str) -> tuple[int, float | None]:
        """Return the status for one request of ``key`` and the Retry-After to send, if any."""
        now = time.monotonic()
        with self.lock:
            account = self.accounts.setdefault(key, Account(refilled_at=now))
            account.requests += 1
            if not account.banned and now < account.wait_until:
                account.ignored += 1
                account.banned = account.ignored >= BAN_AFTER
            if account.banned:
                return 403, None
            if self.quota_spent:
                account.limited += 1
                account.wait_until = now + QUOTA_RETRY_AFTER
                return 429, QUOTA_RETRY_AFTER
            elapsed = now - account.refilled_at
            account.tokens = min(BUCKET_SIZE, account.tokens + elapsed * REFILL_PER_SECOND)
            account.refilled_at = now
            if account.tokens < 1.0:
                account.limited += 1
                wait = (1.0 - account.tokens) / REFILL_PER_SECOND
                account.wait_until = now + wait
                return 429, math.ceil(wait * 100) / 100  # rounded up: waiting it is enough
            account.tokens -= 1.0
            account.answered += 1
            return 200, None

    def new_hour(self) -> None:
        """Restore every key's quota and rate limit, as an hour later."""
        with self.lock:
            self.quota_spent = False
            for account in self.accounts.values():
                account.tokens, account.wait_until = BUCKET_SIZE, 0.0

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one chat-completion request."""
        key = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        length = int(handler.headers.get("Content-Length", "0"))
        prompt = json.loads(handler.rfile.read(length))["messages"][-1]["content"]
        status, retry_after = self.decide(key)
        answer: dict[str, Any]
        if status == 200:
            answer = {"choices": [{"message": {"role": "assistant", "content": f"re: {prompt}"}}]}
        elif status == 429:
            answer = {"error": {"type": "rate_limit_exceeded"}}
        else:
            answer = {"error": {"type": "key_banned", "message": "too many ignored Retry-After"}}
        body = json.dumps(answer).encode()
        handler.send_response(status)
        if retry_after is not None:
            handler.send_header("Retry-After", f"{retry_after:g}")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def make_client(api: FakeLLMAPI, key: str) -> httpx.Client:
    """Return an httpx client for ``api`` using ``key``, with the usual LLM call timeout."""
    return httpx.Client(
        base_url=api.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=get_timeout("llm_api_call"),
        trust_env=False,  # no proxy from the environment stands between us and 127.0.0.1
    )


def post_prompt(client: httpx.Client, prompt: str) -> httpx.Response:
    """POST one chat completion and return the response, whatever its status."""
    body = {"model": "fake-1", "messages": [{"role": "user", "content": prompt}]}
    return client.post("/v1/chat/completions", json=body)


def naive(api: FakeLLMAPI, prompts: list[str]) -> None:
    print("1. A naive client retries each 429 at once:")
    started = time.monotonic()
    with make_client(api, "sk-naive") as client:
        for prompt in prompts:
            while (response := post_prompt(client, prompt)).status_code == 429:
                pass
    account = api.accounts["sk-naive"]
    assert account.banned
    print(
        f"   {account.requests} requests in {time.monotonic() - started:.3f} s, "
        f"{account.answered} prompts answered, then HTTP {response.status_code}: "
        f"the key is banned after ignoring Retry-After {account.ignored} times"
    )


# Every failed attempt counts, 429s included: a prompt rate-limited once and then answered
# resets the count, while an API that refuses five in a row (a spent quota) opens the circuit.
clock = FakeClock()
breaker = CircuitBreaker(name="llm-api", failure_threshold=5, recovery_timeout=60.0, clock=clock)
breaker.add_listener(lambda b, old, new: print(f"   [breaker {b.name}] {old.value} -> {new.value}"))


@breaker
def complete(client: httpx.Client, prompt: str) -> str:
    """Return the model's answer to ``prompt``; raise for an error status."""
    try:
        response = post_prompt(client, prompt)
    # retry_api_call retries the builtin network errors; httpx has its own, so translate.
    except httpx.TimeoutException as error:
        raise TimeoutError(str(error)) from error
    except httpx.TransportError as error:
        raise ConnectionError(f"{type(error).__name__}: {error}") from error
    response.raise_for_status()  # HTTPStatusError: .response has the status and Retry-After
    answer: str = response.json()["choices"][0]["message"]["content"]
    return answer


def careful(api: FakeLLMAPI, client: httpx.Client, prompts: list[str]) -> None:
    print("2. The careful client: retry_api_call around a breaker (threshold 5, recovery 60 s):")
    started = time.monotonic()
    for prompt in prompts:
        before = api.accounts["sk-careful"].requests if "sk-careful" in api.accounts else 0
        answer = retry_api_call(complete, client, prompt)
        tries = api.accounts["sk-careful"].requests - before
        waited = f" after {tries - 1} x 429 (waited as asked)" if tries > 1 else ""
        print(f"   {prompt!r} -> {answer!r}{waited}")
    account = api.accounts["sk-careful"]
    assert account.answered == len(prompts)
    assert account.ignored == 0
    assert breaker.state is CircuitState.CLOSED
    print(
        f"   {len(prompts)} prompts answered in {time.monotonic() - started:.2f} s with "
        f"{account.requests} requests ({account.limited} rate-limited), "
        f"{account.ignored} ignoring a Retry-After"
    )


def quota_spent(api: FakeLLMAPI, client: httpx.Client, prompts: list[str]) -> None:
    print(f"3. The key's quota is spent: 429 with Retry-After: {QUOTA_RETRY_AFTER:g}")
    api.quota_spent = True
    account = api.accounts["sk-careful"]
    before = account.requests
    given_up = rejected = 0
    for prompt in prompts:
        try:
            retry_api_call(complete, client, prompt)
        except httpx.HTTPStatusError as error:
            given_up += 1
            if given_up == 1:
                print(f"   ({error.__notes__[0]})")
        except CircuitOpenError:
            rejected += 1
    sent = account.requests - before
    assert (sent, given_up, rejected) == (5, 5, len(prompts) - 5)
    assert breaker.state is CircuitState.OPEN
    assert not account.banned
    print(
        f"   the first {given_up} prompts got a 429 each and gave up at once (no hour-long "
        f"sleep); the other {rejected} were refused by the open breaker, without a request"
    )
    print(
        f"   the API received {sent} requests for {len(prompts)} prompts ({account.ignored} "
        f"within the announced hour, as new prompts): below its ban threshold of {BAN_AFTER}, "
        "which the same prompts sent without a breaker would have crossed"
    )


def recovered(api: FakeLLMAPI, client: httpx.Client, prompts: list[str]) -> None:
    print("4. An hour later the quota is back.")
    api.new_hour()
    clock.advance(60.0)
    print("   (60 s pass on the breaker's clock: a trial call is allowed)")
    for prompt in prompts:
        print(f"   {prompt!r} -> {retry_api_call(complete, client, prompt)!r}")
    assert breaker.state is CircuitState.CLOSED


def main() -> None:
    prompts = [f"question {n}" for n in range(1, 11)]
    with FakeLLMAPI() as api:
        print(
            f"Fake LLM API on {api.url}: bursts of {BUCKET_SIZE}, {REFILL_PER_SECOND:g} "
            f"requests/s, a key is banned after ignoring Retry-After {BAN_AFTER} times"
        )
        naive(api, prompts)
        with make_client(api, "sk-careful") as client:
            careful(api, client, prompts)
            quota_spent(api, client, [f"batch item {n}" for n in range(1, 31)])
            recovered(api, client, ["question 11", "question 12"])
        print("What the API saw, per key:")
        for key, account in api.accounts.items():
            print(
                f"   {key:<10}  {account.requests:3} requests, {account.answered:3} answered, "
                f"{account.limited:3} rate-limited, {account.ignored:3} ignoring Retry-After, "
                f"banned: {'yes' if account.banned else 'no'}"
            )
    stats = breaker.get_stats()
    print(
        f"Breaker {stats['name']}: {stats['total_calls']} calls, {stats['total_successes']} "
        f"succeeded, {stats['total_failures']} failed, {stats['total_rejected']} rejected."
    )


if __name__ == "__main__":
    main()
