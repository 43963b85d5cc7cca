"""The bench image's function binaries (/beldi-bin, /bokiflow-bin, /optimal-bin): what they refuse at
start (env), and what their handlers refuse per request (the Function name)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from hmcontract.catalog import LOGGING_MODES, AppDir, app_dir_of, func_name_matches
from hmcontract.checks import Refusal, fatal
from hmcontract.init_tool import NoCredentials, credentials, instance_profile_answers


class Panic(Exception):
    """A request the real handler panics on (or, for hotel, silently answers 0): see request_kind."""


def logging_mode(d: AppDir, env: dict[str, str]) -> str | None:
    """sheet §1 'Build-time mode': optimal-bin reads LoggingMode at start; read/write/none; unset is
    WRITELOG (with a log line); any other value is fatal. The other builds do not read it."""
    if d.variant != "halfmoon":
        return None
    raw = env.get("LoggingMode")
    if raw is None:
        print("LoggingMode not set: WRITELOG", file=sys.stderr, flush=True)
        return "WRITELOG"
    if raw not in LOGGING_MODES:
        raise Refusal(f"LoggingMode={raw!r}: expected read, write or none", "sheet §1 'Build-time mode'")
    return LOGGING_MODES[raw]


def dynamodb_access(binary_path: str, env: dict[str, str], instance_profile=instance_profile_answers) -> str:
    """sheet §2.1 (need_aws_env), §4.1 (Region, Credentials): a function that reaches DynamoDB needs
    AWS_REGION and credentials that aws-sdk-go v1's default chain finds. The real binary starts
    without them and fails every call (NoCredentialProviders), a point of failed calls; the stand-in
    refuses at start. Returns where the credentials come from."""
    if not env.get("AWS_REGION"):
        raise Refusal(f"{binary_path}: AWS_REGION is not set (DynamoDB's region)", "sheet §2.1 need_aws_env, §4.1")
    try:
        return credentials(env, instance_profile)["source"]
    except NoCredentials as e:
        raise Refusal(f"{binary_path}: {e}", "sheet §4.1 'Credentials'") from None


def start_check(binary_path: str, env: dict[str, str], instance_profile=instance_profile_answers) -> dict[str, Any]:
    d = app_dir_of(binary_path)
    name = binary_path.rstrip("/").rsplit("/", 1)[-1]
    if d is None or name not in d.binaries:
        raise Refusal(f"{binary_path}: not a function binary of the bench image", "sheet §2.2-§2.6")
    for var in d.required_env.get(name, ()):
        if not env.get(var):
            raise Refusal(f"{binary_path}: {var} is not set (the binary panics without it)", "sheet §2.2-§2.6")
    mode = logging_mode(d, env)
    creds = None if name in d.no_dynamodb else dynamodb_access(binary_path, env, instance_profile)
    # sheet §2.1 'Ids': the launcher's funcId names this binary's function in the registry.
    fn = env.get("HMCONTRACT_FUNC_NAME")
    if fn is None:
        raise Refusal(f"{binary_path}: run it through /tmp/boki/run_launcher (/boki/launcher)", "sheet §2.1")
    if not func_name_matches(name, fn, d.variant):
        raise Refusal(
            f"{binary_path} launched as funcId {env.get('HMCONTRACT_FUNC_ID')}, which the registry names {fn!r}",
            "sheet §2.1 (Ids), §2.3-§2.5 (names)",
        )
    keep = ("NUM_KEYS", "VALUE_SIZE", "NUM_OPS", "READ_RATIO", "MAX_RETURN_POSTS", "TABLE_PREFIX")
    return {
        "app": d.app,
        "variant": d.variant,
        "binary": name,
        "LoggingMode": mode,
        "funcName": fn,
        "credentials": creds,  # where from (never the keys)
        "env": {k: env[k] for k in keep if k in env},
    }


HOTEL_KINDS = ("search", "recommend", "user", "reserve")
SWITCH_MODES = ("READLOG", "WRITELOG", "TRANSITIONAL")


def request_kind(app: str, binary: str, body: Any) -> tuple[str, dict[str, Any]]:
    """What the entry function dispatches on; Panic where the real handler panics. Returns the
    request kind and the Input (the gateway then runs the call through the stand-in app's route)."""
    inp = body.get("Input") if isinstance(body, dict) else None
    inp = inp if isinstance(inp, dict) else {}
    fn = inp.get("Function")
    if app == "hotel" and binary == "gateway":
        # sheet §5.2: the gateway function dispatches on the lower-case names; any other returns 0
        # without doing anything (a point measuring nothing), so the stand-in stops loudly instead.
        if fn not in HOTEL_KINDS:
            raise Panic(f"hotel gateway: Function {fn!r} is none of {', '.join(HOTEL_KINDS)} (sheet §5.2)")
        return fn, inp
    if app == "movie" and binary == "Frontend":
        if fn != "Compose":  # sheet §5.2: matches "Compose" exactly; any other value panics
            raise Panic(f"movie Frontend: Function {fn!r} is not 'Compose' (sheet §5.2)")
        return "compose", inp
    if app == "retwis" and binary in ("login", "profile", "timeline", "post"):
        want = binary.capitalize()  # sheet §5.2: each handler matches its capitalized Function, else panics
        if fn != want:
            raise Panic(f"retwis {binary}: Function {fn!r} is not {want!r} (sheet §5.2)")
        return binary, inp
    if app == "switching" and binary == "rw":
        # sheet §2.6: Input.mode, Input.nOps, Input.readRatio by type assertion; a missing field panics.
        ok = (
            inp.get("mode") in SWITCH_MODES
            and isinstance(inp.get("nOps"), int | float)
            and isinstance(inp.get("readRatio"), int | float)
        )
        if not ok:
            raise Panic(f"switching rw: Input needs mode {SWITCH_MODES}, nOps and readRatio numbers (sheet §2.6)")
        return "rw", {"NumOps": int(inp["nOps"]), "ReadRatio": float(inp["readRatio"])}
    if app in ("singleop", "rw") and binary in ("singleop", "rw", "nop"):
        return binary, {}  # sheet §2.6: parameters come from env; the body is ignored
    raise Panic(f"{app}: {binary} is not called by the client (sheet §5.2)")


def main(binary_path: str) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        report = start_check(binary_path, dict(os.environ))
    except Refusal as e:
        return fatal(binary_path, e)
    print(json.dumps(report), flush=True)  # to the launcher: started
    while True:
        time.sleep(3600)
