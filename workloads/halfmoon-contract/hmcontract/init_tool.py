"""`init` of an app directory of the bench image, run on the client host after being copied out of
the image (sheet §4.5): `init create|populate|clean [<variant arg>] [<data file>]`. Creates the
app's DynamoDB tables (sheet §4.1, §4.2), writes the items of sheet §4.3/§4.4 one UpdateItem at a
time, and deletes the tables. Self-contained (the standard library only: DynamoDB's JSON protocol
with SigV4 over http.client), because it runs on the host, outside any image.

Stand-in differences: the endpoint comes from AWS_ENDPOINT_URL when set (the real aws-sdk-go v1
binary ignores that variable and always talks to DynamoDB in AWS_REGION); the Beldi variant's 2 s
sleep after each CreateTable is left out. Credentials are found as aws-sdk-go v1's default chain
finds them (`credentials`: environment, shared credentials file, the EC2 instance profile), and
refused when there are none, also against an endpoint override (the real init fails its first call).
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import random
import string
import sys
import time
import urllib.request
from typing import Any

APP_DIR = globals().get("APP_DIR", "")  # set by the image build: the directory this copy came from

# sheet §4.2 (tables) and §1 (variant per build; the init argument per directory).
TABLES = {
    "singleop": ["singleop"],
    "hotel": [
        "user",
        "search",
        "flight",
        "frontend",
        "geo",
        "order",
        "hotel",
        "profile",
        "rate",
        "recommendation",
        "gateway",
    ],
    "movie": [
        "CastInfo",
        "ComposeReview",
        "Frontend",
        "MovieId",
        "MovieInfo",
        "MovieReview",
        "Page",
        "Plot",
        "Rating",
        "ReviewStorage",
        "Text",
        "UniqueId",
        "User",
        "UserReview",
    ],
    "retwis": ["user", "post", "timeline"],
    "rw": ["rw"],
    "switching": ["rw"],
}


def table_names(app: str, variant: str) -> tuple[str, ...]:
    """Sheet §4.2: the Unsafe (Beldi baseline) names are b-prefixed, except retwis's."""
    names = tuple(TABLES[app])
    if variant == "unsafe" and app != "retwis":
        return tuple("b" + n for n in names)
    return names


APPS = {
    "bhotel": "hotel",
    "hotel": "hotel",
    "bmedia": "movie",
    "media": "movie",
    "bretwis": "retwis",
    "retwis": "retwis",
    "bsingleop": "singleop",
    "singleop": "singleop",
    "rw": "rw",
    "switching": "switching",
}
VARIANTS = {"/beldi-bin": "unsafe", "/bokiflow-bin": "boki", "/optimal-bin": "halfmoon"}
# sheet §4.5: env the init of each app requires (besides TABLE_PREFIX and AWS_REGION).
REQUIRED_ENV = {
    "singleop": ["NUM_KEYS"],
    "retwis": ["NUM_USERS", "NUM_FOLLOWERS", "MAX_RETURN_POSTS"],
    "rw": ["NUM_KEYS", "VALUE_SIZE"],
    "switching": ["NUM_KEYS", "VALUE_SIZE"],
}


class InitError(Exception):
    pass


class NoCredentials(Exception):
    """aws-sdk-go v1's default chain found no credentials (it fails every call with NoCredentialProviders)."""


IMDS = "http://169.254.169.254"


def instance_profile_answers(timeout_s: float = 1.0) -> bool:
    """Does the EC2 instance metadata service name a role (IMDSv2: a token first)?"""
    try:
        put = urllib.request.Request(
            IMDS + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        with urllib.request.urlopen(put, timeout=timeout_s) as r:
            token = r.read().decode()
        get = urllib.request.Request(
            IMDS + "/latest/meta-data/iam/security-credentials/", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(get, timeout=timeout_s) as r:
            return bool(r.read().strip())
    except OSError:
        return False


def credentials(env: dict[str, str], instance_profile=instance_profile_answers) -> dict[str, str]:
    """The credentials aws-sdk-go v1's default chain would use, in its order: the environment
    (AWS_ACCESS_KEY_ID or AWS_ACCESS_KEY with AWS_SECRET_ACCESS_KEY or AWS_SECRET_KEY, optional
    AWS_SESSION_TOKEN); the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
    $HOME/.aws/credentials) at profile AWS_PROFILE, else `default`, with aws_access_key_id,
    aws_secret_access_key and optional aws_session_token; the EC2 instance profile. Returns
    {key, secret, token, source} (key empty for the instance profile); NoCredentials names what it
    looked at."""
    key = env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY", "")
    secret = env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY", "")
    if key and secret:
        return {"key": key, "secret": secret, "token": env.get("AWS_SESSION_TOKEN", ""), "source": "environment"}
    if key or secret:
        raise NoCredentials("the environment has only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(env.get("HOME", "/root"), ".aws", "credentials")
    profile = env.get("AWS_PROFILE") or "default"
    if os.path.exists(path) or env.get("AWS_SHARED_CREDENTIALS_FILE"):
        ini = configparser.RawConfigParser()
        try:
            with open(path) as f:
                ini.read_file(f)
        except (OSError, configparser.Error) as e:
            raise NoCredentials(f"failed to load shared credentials file {path}: {e}") from None
        if not ini.has_section(profile):
            raise NoCredentials(f"shared credentials file {path} has no profile [{profile}]")
        section = ini[profile]
        for field in ("aws_access_key_id", "aws_secret_access_key"):
            if not section.get(field, "").strip():
                raise NoCredentials(f"shared credentials {profile} in {path} did not contain {field}")
        return {
            "key": section["aws_access_key_id"].strip(),
            "secret": section["aws_secret_access_key"].strip(),
            "token": section.get("aws_session_token", "").strip(),
            "source": f"{path} [{profile}]",
        }
    # aws-sdk-go v1 skips the metadata service when AWS_EC2_METADATA_DISABLED is true.
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true" and instance_profile():
        return {"key": "", "secret": "", "token": "", "source": "instance profile"}
    raise NoCredentials(
        "no DynamoDB credentials: no AWS_ACCESS_KEY_ID in the environment, no shared credentials file "
        f"({path}; AWS_SHARED_CREDENTIALS_FILE unset), no EC2 instance profile at {IMDS}"
    )


def where() -> tuple[str, str]:
    root, _, name = APP_DIR.rpartition("/")
    if root not in VARIANTS or name not in APPS:
        raise InitError(f"this init does not know its app directory ({APP_DIR!r})")
    return APPS[name], VARIANTS[root]


def expected_arg(app: str, variant: str) -> str | None:
    """sheet §4.5: hotel and movie take baseline (Unsafe) or cayon; boki/opt retwis take cayon; the
    rest (and baseline-retwis, fixed at build time) take none."""
    if app in ("hotel", "movie"):
        return "baseline" if variant == "unsafe" else "cayon"
    if app == "retwis" and variant != "unsafe":
        return "cayon"
    return None


class Dynamo:
    def __init__(self, env: dict[str, str]) -> None:
        self.region = env["AWS_REGION"]
        self.endpoint = env.get("AWS_ENDPOINT_URL") or f"https://dynamodb.{self.region}.amazonaws.com"
        self.conn: http.client.HTTPConnection | None = None
        try:
            creds = credentials(env)
        except NoCredentials as e:
            raise InitError(str(e)) from None
        if not creds["key"]:
            raise InitError("the instance profile's credentials: the stand-in does not fetch them (run it off EC2)")
        self.key, self.secret, self.token = creds["key"], creds["secret"], creds["token"]

    def call(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        host = self.endpoint.split("://", 1)[1].split("/", 1)[0]
        now = time.gmtime()  # (the host's python may be older than the images': no datetime.UTC)
        amz_date, day = time.strftime("%Y%m%dT%H%M%SZ", now), time.strftime("%Y%m%d", now)
        headers = {
            "content-type": "application/x-amz-json-1.0",
            "host": host,
            "x-amz-date": amz_date,
            "x-amz-target": f"DynamoDB_20120810.{op}",
        }
        if self.token:  # temporary credentials (STS): the token is sent and signed
            headers["x-amz-security-token"] = self.token
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                *[f"{k}:{headers[k]}" for k in sorted(headers)],
                "",
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/dynamodb/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "dynamodb", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.key}/{scope}, SignedHeaders={signed}, Signature={sig}"
        )
        for attempt in (1, 2):  # one keep-alive connection; a dropped one is reopened once
            try:
                if self.conn is None:
                    https = self.endpoint.startswith("https")
                    self.conn = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(host, timeout=30)
                self.conn.request("POST", "/", body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
        if r.status >= 400:
            err = json.loads(data or b"{}")
            raise DynamoError(err.get("__type", "").rsplit("#", 1)[-1], err.get("message", ""))
        return json.loads(data or b"{}")


class DynamoError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def attr(v: Any) -> dict[str, Any]:
    """A Go value as aws-sdk-go's dynamodbattribute marshals it (sheet §4.3: structs become maps)."""
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, (int, float)):
        return {"N": repr(v) if isinstance(v, float) else str(v)}
    if isinstance(v, str):
        return {"S": v}
    if isinstance(v, list):
        return {"L": [attr(x) for x in v]}
    if isinstance(v, dict):
        return {"M": {k: attr(x) for k, x in v.items()}}
    return {"NULL": True}


def put(db: Dynamo, table: str, key: str, value: Any, variant: str) -> None:
    """sheet §4.3: Unsafe {K, V}; Boki {K, VERSION: 0, V}; HM {K: "<key>_0", V}; one UpdateItem each."""
    k = f"{key}_0" if variant == "halfmoon" else key
    names, values, expr = {"#V": "V"}, {":v": attr(value)}, "SET #V = :v"
    if variant == "boki":
        names["#VER"], values[":ver"], expr = "VERSION", {"N": "0"}, "SET #V = :v, #VER = :ver"
    db.call(
        "UpdateItem",
        {
            "TableName": table,
            "Key": {"K": {"S": k}},
            "UpdateExpression": expr,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        },
    )


def items(app: str, env: dict[str, str], rest: list[str]) -> list[tuple[str, str, Any]]:
    """sheet §4.4: what populate writes, per app: (table, key, value)."""
    out: list[tuple[str, str, Any]] = []
    if app == "singleop":
        out = [("singleop", str(i), 1) for i in range(int(env["NUM_KEYS"]))]
    elif app in ("rw", "switching"):
        value = "".join(random.choices(string.ascii_letters + string.digits, k=int(env["VALUE_SIZE"])))
        out = [("rw", str(i), value) for i in range(int(env["NUM_KEYS"]))]
    elif app == "hotel":
        fixed = [
            (37.7867, 0.0),
            (37.7854, -122.4005),
            (37.7854, -122.4071),
            (37.7936, -122.3930),
            (37.7831, -122.4181),
            (37.7863, -122.4015),
        ]
        for i in range(1, 81):
            lat, lon = fixed[i - 1] if i <= 6 else (37.7835 + i / 500.0 * 3, -122.41 + i / 500.0 * 4)
            out.append(("geo", str(i), {"Pid": str(i), "Plat": lat, "Plon": lon}))
        for i in range(1, 80):
            h = str(i)
            out += [
                (
                    "profile",
                    h,
                    {
                        "Id": h,
                        "Name": f"St. Regis {h}",
                        "PhoneNumber": f"(415) 284-40{i:02d}",
                        "Description": "A hotel.",
                        "Address": {
                            "StreetNumber": h,
                            "StreetName": "Street",
                            "City": "San Francisco",
                            "State": "CA",
                            "Country": "United States",
                            "PostalCode": "94107",
                            "Lat": 37.7835 + i / 500.0 * 3,
                            "Lon": -122.41 + i / 500.0 * 4,
                        },
                    },
                ),
                (
                    "rate",
                    h,
                    {
                        "HotelId": h,
                        "Code": "RACK",
                        "Indate": "2015-04-09",
                        "Outdate": "2015-04-17" if i % 2 else "2015-04-24",
                        "RoomType": {
                            "BookableRate": 109.0,
                            "Code": "KNG",
                            "RoomDescription": "King sized bed",
                            "TotalRate": 109.0,
                            "TotalRateInclusive": 123.17,
                        },
                    },
                ),
                (
                    "recommendation",
                    h,
                    {
                        "HId": h,
                        "HLat": 37.7835 + i / 500.0 * 3,
                        "HLon": -122.41 + i / 500.0 * 4,
                        "HRate": float(i % 5),
                        "HPrice": 100.0 + i,
                    },
                ),
            ]
        out += [("user", f"Cornell_{i}", {"Username": f"Cornell_{i}", "Password": str(i) * 10}) for i in range(501)]
        out += [("hotel", str(i), {"HotelId": str(i), "Cap": 10, "Customers": []}) for i in range(100)]
        out += [("flight", str(i), {"FlightId": str(i), "Cap": 10, "Customers": []}) for i in range(100)]
    elif app == "retwis":
        n, f, posts = int(env["NUM_USERS"]), int(env["NUM_FOLLOWERS"]), int(env["MAX_RETURN_POSTS"])
        rng = random.Random(1)
        out = [
            (
                "user",
                f"user{i}",
                {
                    "Username": f"user{i}",
                    "Password": f"pwd{i}",
                    "Followers": [f"user{rng.randrange(n)}" for _ in range(f)],
                },
            )
            for i in range(n)
        ]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        ids = [f"{stamp}-{i}" for i in range(posts)]
        text = "".join(rng.choices(string.ascii_letters + string.digits, k=256))
        out += [("post", pid, text) for pid in ids]
        out += [("timeline", f"user{i}", {"Posts": {pid: {"Timestamp": stamp} for pid in ids}}) for i in range(n)]
    elif app == "movie":
        if not rest:
            raise InitError("movie populate needs the data file (init populate <v> /tmp/compressed.json)")
        try:
            with open(rest[0]) as fh:
                records = json.load(fh)
        except (OSError, ValueError) as e:
            raise InitError(f"cannot read the movie data file {rest[0]}: {e}") from None
        for i in range(1000):
            salt = "".join(random.choices(string.ascii_letters + string.digits, k=22))
            pw = hashlib.sha512(f"password_{i}{salt}".encode()).hexdigest()
            out.append(
                (
                    "User",
                    f"username_{i}",
                    {
                        "UserId": f"user{i}",
                        "FirstName": "firstname",
                        "LastName": "lastname",
                        "Username": f"username_{i}",
                        "Password": pw,
                        "Salt": salt,
                    },
                )
            )
        titles: dict[str, Any] = {}
        for r in records:
            out.append(("MovieInfo", str(r["MovieId"]), r))
            out.append(("Plot", str(r["MovieId"]), {"plotId": r.get("PlotId"), "plot": "plot"}))
            titles[r["Title"]] = {"movieId": r["MovieId"], "title": r["Title"]}
        out += [("MovieId", t, v) for t, v in titles.items()]
    return out


def wait(db: Dynamo, table: str, gone: bool) -> None:
    while True:  # sheet §4.5: DescribeTable every 3 s until ACTIVE (create) or gone (clean)
        try:
            status = db.call("DescribeTable", {"TableName": table})["Table"]["TableStatus"]
        except DynamoError as e:
            if e.kind == "ResourceNotFoundException" and gone:
                return
            raise
        if not gone and status == "ACTIVE":
            return
        time.sleep(3)


def check(argv: list[str], env: dict[str, str]) -> tuple[str, list[str]]:
    """What init refuses before it talks to DynamoDB; returns the command and its other arguments."""
    app, variant = where()
    if not argv or argv[0] not in ("create", "populate", "clean"):
        raise InitError("usage: init create|populate|clean [baseline|cayon] [data file]")
    cmd, rest = argv[0], argv[1:]
    want = expected_arg(app, variant)
    if want is not None:
        if not rest or rest[0] != want:
            raise InitError(f"{APP_DIR}/init {cmd} expects the argument {want!r} (sheet §4.5), got {rest[:1]}")
        rest = rest[1:]
    missing = [v for v in ["AWS_REGION", *REQUIRED_ENV.get(app, [])] if not env.get(v)]
    if missing:
        raise InitError(f"{APP_DIR}/init: {', '.join(missing)} not set (sheet §4.5)")
    if app == "movie" and cmd == "populate" and not rest:
        raise InitError("movie populate needs the data file (init populate <v> /tmp/compressed.json)")
    return cmd, rest


def run(argv: list[str], env: dict[str, str]) -> int:
    app, variant = where()
    cmd, rest = check(argv, env)
    prefix = env.get("TABLE_PREFIX", "")
    names = list(table_names(app, variant))
    db = Dynamo(env)
    if cmd == "create":
        for t in names:
            with contextlib.suppress(DynamoError):  # sheet §4.5: CreateTable errors are ignored (exists: fine)
                db.call(
                    "CreateTable",
                    {
                        "TableName": prefix + t,
                        "BillingMode": "PAY_PER_REQUEST",
                        "AttributeDefinitions": [{"AttributeName": "K", "AttributeType": "S"}],
                        "KeySchema": [{"AttributeName": "K", "KeyType": "HASH"}],
                    },
                )
        for t in names:
            wait(db, prefix + t, gone=False)
    elif cmd == "populate":
        rows = items(app, env, rest)
        b = "b" if variant == "unsafe" and app != "retwis" else ""
        for table, key, value in rows:
            put(db, prefix + b + table, key, value, variant)
        print(f"populated {len(rows)} items", flush=True)
    else:
        for t in names:
            try:
                db.call("DeleteTable", {"TableName": prefix + t})
            except DynamoError as e:
                if e.kind != "ResourceNotFoundException":
                    raise
        if app in ("singleop", "rw", "switching"):  # sheet §4.5: these wait until the table is gone
            for t in names:
                wait(db, prefix + t, gone=True)
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:], dict(os.environ))
    except (InitError, DynamoError) as e:
        print(f"init: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
