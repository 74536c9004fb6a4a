"""Tap mode for a Python bot: copy this file next to your webhook handler.

RBM keeps delivering to your bot. Your bot passes each webhook request on to
rbm-analytics' ingest untouched — the raw body and its X-Goog-Signature, so
ingest verifies it with the same client token — and posts what
agentMessages.create returned for each message it sends. Standard library only.

    RBM_ANALYTICS_URL      ingest's URL (terraform output webhook_url)
    RBM_ANALYTICS_API_KEY  the agent API key (AGENT_API_KEYS)

In the webhook handler (Flask shown; any framework's raw body works):

    from rbm_analytics_tap import forward_webhook_later, record_sent

    @app.post("/rbm")
    def rbm_webhook():
        body = request.get_data()  # the raw bytes, before any JSON parsing
        forward_webhook_later(body, request.headers.get("X-Goog-Signature"))
        ...  # your bot's own handling, unchanged
        return "", 200

Where the bot sends a message, either post the response yourself:

    response = service.phones().agentMessages().create(
        parent=f"phones/{msisdn}", messageId=message_id, body=message
    ).execute()
    record_sent("my-agent", response)

or wrap the call once and use the wrapper everywhere (records in the background):

    send = recording_create(
        "my-agent", lambda **kw: service.phones().agentMessages().create(**kw).execute()
    )
    response = send(parent=f"phones/{msisdn}", messageId=message_id, body=message)

A failed forward is retried a few times in the background and then logged; it
never holds up or fails the bot's own answer to RBM.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("rbm_analytics_tap")
TIMEOUT_S = 10
ATTEMPTS = 4


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    if not url.startswith(("https://", "http://")):
        raise ValueError("RBM_ANALYTICS_URL must be an http(s) URL")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # not reached: retried like a 503


def _deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST until 200; 4xx other than 429 means the request itself is wrong."""
    status = 0
    for attempt in range(ATTEMPTS):
        status = _post(url, body, headers)
        if status == 200 or (400 <= status < 500 and status != 429):
            break
        time.sleep(0.5 * 2**attempt)
    if status != 200:
        log.warning("rbm-analytics: %s answered %s", url, status or "nothing")
    return status


def forward_webhook(body: bytes, signature: str | None) -> int:
    """Send one webhook request's raw body and signature to ingest; the last status."""
    headers = {"Content-Type": "application/json", "X-Goog-Signature": signature or ""}
    return _deliver(os.environ["RBM_ANALYTICS_URL"].rstrip("/") + "/", body, headers)


def forward_webhook_later(body: bytes, signature: str | None) -> None:
    """``forward_webhook`` on a background thread: the bot answers RBM at once."""
    threading.Thread(target=forward_webhook, args=(body, signature), daemon=True).start()


def record_sent(agent_id: str, response: dict[str, Any]) -> int:
    """Post what agentMessages.create returned (name, sendTime, contentMessage, …)."""
    body = json.dumps({**response, "agentId": agent_id}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {os.environ['RBM_ANALYTICS_API_KEY']}",
    }
    return _deliver(os.environ["RBM_ANALYTICS_URL"].rstrip("/") + "/agent-messages", body, headers)


def recording_create(agent_id: str, create: Any) -> Any:
    """Wrap the call that sends a message so every sent message is recorded:
    ``send = recording_create("my-agent", lambda **kw: agent_messages.create(**kw).execute())``."""

    def send(*args: Any, **kwargs: Any) -> Any:
        response = create(*args, **kwargs)
        threading.Thread(target=record_sent, args=(agent_id, response), daemon=True).start()
        return response

    return send
