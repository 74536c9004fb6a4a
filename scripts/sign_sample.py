#!/usr/bin/env python3
"""Wrap an RBM payload in a webhook envelope and sign it as RBM does.

Writes the envelope to --body (default: stdout) and prints the
X-Goog-Signature value: base64(HMAC-SHA512(client token, payload bytes)).

    SIG=$(.venv/bin/python scripts/sign_sample.py tests/fixtures/rbm/user_event_read.json \
          --body body.json)
    curl -H "X-Goog-Signature: $SIG" --data-binary @body.json http://localhost:8080/
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from rbm_analytics_dev.local.sender import signed_webhook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("payload", type=pathlib.Path, help="a decoded RBM payload (JSON file)")
    parser.add_argument(
        "--token",
        default=os.environ.get("RBM_CLIENT_TOKEN", "TEST_CLIENT_TOKEN"),
        help="client token to sign with (default: $RBM_CLIENT_TOKEN or TEST_CLIENT_TOKEN)",
    )
    parser.add_argument("--body", type=pathlib.Path, help="write the envelope here")
    args = parser.parse_args()

    data = args.payload.read_bytes().strip()
    body, headers = signed_webhook(data, args.token)
    signature = headers["X-Goog-Signature"]
    if args.body is None:
        print(f"X-Goog-Signature: {signature}", file=sys.stderr)
        print(body.decode())
    else:
        args.body.write_bytes(body)
        print(signature)


if __name__ == "__main__":
    main()
