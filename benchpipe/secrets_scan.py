"""Finds credentials in files the project wrote (results, logs, manifests, cluster files)."""

from __future__ import annotations

import os
import re
from pathlib import Path

PATTERNS = {
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS secret in a key=value": re.compile(rb"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+]{40}"),
    "session token in a key=value": re.compile(rb"(?i)aws_session_token\W{1,4}[A-Za-z0-9/+=]{100,}"),
}
ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def scan(roots: list[Path]) -> list[str]:
    """'<file>: <what>' for every finding under `roots`; the secret values themselves are not repeated."""
    literal = {name: os.environ[name].encode() for name in ENV_SECRETS if len(os.environ.get(name, "")) >= 12}
    findings = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for what, rx in PATTERNS.items():
                if rx.search(data):
                    findings.append(f"{path}: {what}")
            for name, value in literal.items():
                if value in data:
                    findings.append(f"{path}: the value of ${name}")
    return findings
