"""Cloud writes batched and paced (issue 14 part 4): 1,000 changes per provider through each
connector's apply_batch, against the local doubles made to enforce the providers' documented
limits, with the real SDKs.

    .venv/bin/python benchmarks/cloud.py                 # all four, limits scaled (~3 min)
    .venv/bin/python benchmarks/cloud.py --scale 1       # the real limits for all (~12 min)
    .venv/bin/python benchmarks/cloud.py --only gcp,okta --changes 200

Scaling: with scale S both sides are S times faster (the doubles' windows S times shorter or
their buckets refilled S times faster, the connector's rates S times higher; bucket sizes and
per-window counts unchanged), so the run takes about 1/S of the time the real limits would.
Each provider's default S (SCALES) is as high as this 2-core machine keeps the run bound by the
limit rather than by its own CPU (the SDK, the double and the connector share one process):
above it the rate achieved falls because the machine cannot send faster, not because of pacing.

Each case reports the calls that count against the limit, the seconds apply_batch took, the
rate achieved and the documented sustained rate (times S) and their ratio, the failed actions
and the 429s/throttles the double answered. Writes benchmarks/out/cloud.json. Timings only: nothing here asserts.

    gcp   1,000 grants on 100 projects (10 each): calls per resource (at most 2) and in all;
          then 1,000 grants on 1,000 projects, bound by the 600 writes per minute
    okta  1,000 grants (1,000 users into 10 groups): the "/api/v1" family at 600 per minute is
          the limit (a user's groups and the PUT per change); 75 concurrent requests per org
    azure 1,000 plain role assignments at one scope: writes 200 tokens refilled at 10 per
          second; the allowed rate is what the bucket lets through for that many writes at best
          (its 200 at once, the rest at 10 per second)
    aws   1,000 account assignments: IAM Identity Center's 20 TPS (sso-admin and identitystore
          together) and 10 outstanding assignment requests; moto behind the test shim
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jitpol.connectors.pacing import Pacing, Rate  # noqa: E402
from jitpol.model.assignment import Action, Assignment, Outcome  # noqa: E402
from jitpol.model.canonical import canonical_json  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
MODEL = "idp-elevation"
SCALES = {"gcp": 5.0, "okta": 3.0, "azure": 10.0, "aws": 5.0}


@dataclass
class Case:
    provider: str
    what: str
    changes: int
    failed: int
    seconds: float
    limited_calls: int  # calls that count against the limit the rate is measured on
    limit: str  # which limit
    allowed_per_s: float  # documented sustained rate, times the scale
    throttled: int  # 429s / throttles the double answered
    note: str = ""

    @property
    def achieved_per_s(self) -> float:
        return self.limited_calls / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.achieved_per_s / self.allowed_per_s


def scaled(rates: Mapping[str, Rate], scale: float) -> dict[str, Rate]:
    return {kind: rate.scaled(scale) for kind, rate in rates.items()}


def failures(results: list[Outcome | Exception]) -> int:
    bad = [r for r in results if isinstance(r, Exception)]
    for r in bad[:3]:
        print(f"    failed: {type(r).__name__}: {str(r)[:300]}")
    return len(bad)


def timed(fn: Callable[[], list[Outcome | Exception]]) -> tuple[list[Outcome | Exception], float]:
    started = time.perf_counter()
    results = fn()
    return results, time.perf_counter() - started


def until() -> datetime:
    return datetime.now(UTC) + timedelta(hours=2)


# -- GCP -------------------------------------------------------------------------------------------


def bench_gcp(changes: int, scale: float) -> list[Case]:
    from google.auth.credentials import AnonymousCredentials

    from jitpol.connectors.gcp import GcpConnector
    from jitpol.connectors.gcp.session import RATES, READS_PER_MINUTE, WRITES_PER_MINUTE
    from tests.doubles.gcp_crm import FakeCrm

    cases: list[Case] = []
    end = until()
    for per_resource in (10, 1):
        resources = max(1, changes // per_resource)
        with FakeCrm(read_limit=READS_PER_MINUTE, write_limit=WRITES_PER_MINUTE, window_s=60 / scale) as crm:
            names = [f"projects/bench-proj-{i:05d}" for i in range(resources)]
            for name in names:
                crm.add_resource(name, [{"role": "roles/viewer", "members": ["user:owner@example.org"]}])
            actions = [
                Action(op="grant", assignment=Assignment("gcp-bench", MODEL, f"user:p{i}@example.com", canonical_json(
                    {"resource": names[i % resources], "role": "roles/cloudsql.admin"})),
                    resource="r", grants=("g",), until=end)
                for i in range(changes)
            ]
            make: Any = AnonymousCredentials
            connector = GcpConnector("gcp-bench", {"api_endpoint": crm.url}, {}, credentials=make(),
                                     pacing=Pacing(rates=scaled(RATES, scale)))
            try:
                results, seconds = timed(lambda c=connector, a=actions: c.apply_batch(a))  # type: ignore[misc]
            finally:
                connector.close()
            per = max(sum(n for (r, _), n in crm.calls.items() if r == name) for name in names)
            writes = sum(n for (_, m), n in crm.calls.items() if m == "setIamPolicy")
            cases.append(Case(
                "gcp", f"{changes:,} grants on {resources:,} projects", changes, failures(results), seconds,
                writes, "setIamPolicy, 600 per minute", WRITES_PER_MINUTE / 60 * scale, crm.throttled,
                f"{sum(crm.calls.values()):,} calls in all, at most {per} per resource",
            ))
    return cases


# -- Okta ------------------------------------------------------------------------------------------


def bench_okta(changes: int, scale: float) -> list[Case]:
    os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"] = "true"  # the double speaks plain HTTP
    from jitpol.connectors.okta import OktaConnector
    from jitpol.connectors.okta.session import PER_MINUTE, RATES
    from tests.doubles.okta import OktaDouble

    token = uuid.uuid4().hex
    with OktaDouble(token, window_s=60 / scale, latency_s=0.002) as okta:
        groups = [okta.add_group(f"group-{i}") for i in range(10)]
        users = [okta.add_user(f"u{i}@example.com", push=False) for i in range(changes)]
        actions = [Action(op="grant", assignment=Assignment("okta-bench", MODEL, u, groups[i % len(groups)]),
                          resource="r", grants=("g",)) for i, u in enumerate(users)]
        connector = OktaConnector("okta-bench", {"org_url": okta.url, "token_env": "OKTA_BENCH_TOKEN"},
                                  {"OKTA_BENCH_TOKEN": token}, pacing=Pacing(rates=scaled(RATES, scale)))
        try:
            results, seconds = timed(lambda: connector.apply_batch(actions))
        finally:
            connector.close()
        st = okta.state
        return [Case(
            "okta", f"{changes:,} grants ({changes:,} users, 10 groups)", changes, failures(results), seconds,
            st.families["other"], '"/api/v1" family, 600 per minute', PER_MINUTE / 60 * scale, st.throttled,
            f"{len(st.requests):,} requests; peak {st.peak_in_flight} in flight (org limit 75)",
        )]


# -- Azure -----------------------------------------------------------------------------------------


def bench_azure(changes: int, scale: float, work: Path) -> list[Case]:
    import importlib

    from azure.core.credentials import AccessToken

    from jitpol.clock import FixedClock
    from jitpol.connectors.azure import AzureConnector
    from jitpol.connectors.azure.session import RATES
    from tests.doubles.arm import FakeArm, make_certificate

    class Token:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("bench-token", int(time.time()) + 3600)

    importlib.import_module("azure.mgmt.authorization")
    cert, key = make_certificate(work)
    subscription = "6b1f3c2a-9d4e-4f5a-8b7c-0d1e2f3a4b5c"
    scope = f"/subscriptions/{subscription}/resourceGroups/rg-bench"
    with FakeArm(cert, key, page_size=1000) as arm:
        arm.tokens.add("bench-token")
        arm.buckets = {kind: (size, refill * scale) for kind, (size, refill) in arm.buckets.items()}
        privilege = canonical_json({"scope": scope, "role": "acdd72a7-3385-48ef-bd42-f606fba81ae7"})
        actions = [Action(op="grant", assignment=Assignment("azure-bench", MODEL, str(uuid.uuid4()), privilege),
                          resource="r", grants=("g",)) for _ in range(changes)]
        connector = AzureConnector(
            "azure-bench", {"subscription_id": subscription, "tenant_id": "contoso.onmicrosoft.com",
                            "base_url": arm.url}, {},
            clock=FixedClock(datetime.now(UTC)), credential=Token(),
            client_options={"connection_verify": str(cert), "retry_total": 0},
            pacing=Pacing(rates=scaled(RATES, scale)),
        )
        try:
            results, seconds = timed(lambda: connector.apply_batch(actions))
        finally:
            connector.close()
        size, refill = arm.buckets["write"]
        writes = arm.answered["write"]
        least = (writes - size) / refill  # the bucket's 200, then the refill: the most it lets through
        return [Case(
            "azure", f"{changes:,} role assignments at one scope", changes, failures(results), seconds,
            writes, "writes: bucket 200, 10 per second", writes / least if least > 0 else refill, arm.throttled,
            f"{len(arm.log):,} requests; the bucket allows {writes:,} writes in {least:.1f} s at best "
            f"(sustained {refill:g}/s)",
        )]


# -- AWS -------------------------------------------------------------------------------------------


def bench_aws(changes: int, scale: float) -> list[Case]:
    import boto3

    from jitpol.connectors.aws import AwsConnector
    from jitpol.connectors.aws.session import IDENTITY_CENTER_TPS, RATES
    from tests.aws_fixtures import AWS_ENV, REGION, AwsShim, _serve
    from tools.throwaway_moto import ThrowawayMoto

    with ThrowawayMoto() as moto:
        shim = AwsShim(upstream=moto.endpoint_url, tps=IDENTITY_CENTER_TPS * scale)
        server = _serve(shim)
        shim.port = server.port
        try:
            kw: dict[str, Any] = {"region_name": REGION, "endpoint_url": moto.endpoint_url,
                                  "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
                                  "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
            sso, store = boto3.client("sso-admin", **kw), boto3.client("identitystore", **kw)
            instance = sso.list_instances()["Instances"][0]
            ps = sso.create_permission_set(InstanceArn=instance["InstanceArn"], Name="bench")["PermissionSet"]
            users = [store.create_user(IdentityStoreId=instance["IdentityStoreId"], UserName=f"u{i}",
                                       DisplayName=f"u{i}", Name={"GivenName": f"u{i}", "FamilyName": "B"})["UserId"]
                     for i in range(changes)]
            privilege = canonical_json({"account": "111122223333", "permissionSet": ps["PermissionSetArn"]})
            actions = [Action(op="grant", assignment=Assignment("aws-bench", MODEL, canonical_json({"userId": u}),
                                                                privilege), resource="r", grants=("g",))
                       for u in users]
            connector = AwsConnector("aws-bench", {"region": REGION, "endpoint_url": shim.endpoint_url,
                                                   "instance_arn": instance["InstanceArn"],
                                                   "identity_store_id": instance["IdentityStoreId"]},
                                     AWS_ENV, pacing=Pacing(rates=scaled(RATES, scale)))
            try:
                results, seconds = timed(lambda: connector.apply_batch(actions))
            finally:
                connector.close()
            return [Case(
                "aws", f"{changes:,} account assignments", changes, failures(results), seconds,
                shim.identity_center_calls, "Identity Center, 20 TPS", IDENTITY_CENTER_TPS * scale, shim.throttled,
                f"peak {shim.peak_outstanding} outstanding assignment requests (limit 10)",
            )]
        finally:
            server.stop()


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=None,
                        help=f"limits and pacing both this many times faster (default per provider: {SCALES})")
    parser.add_argument("--only", default="gcp,okta,azure,aws")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="jitpol-cloud-bench-"))
    cases: list[Case] = []
    errors: dict[str, str] = {}
    scales = {name: args.scale or default for name, default in SCALES.items()}
    runs: dict[str, Callable[[], list[Case]]] = {
        "gcp": lambda: bench_gcp(args.changes, scales["gcp"]),
        "okta": lambda: bench_okta(args.changes, scales["okta"]),
        "azure": lambda: bench_azure(args.changes, scales["azure"], work),
        "aws": lambda: bench_aws(args.changes, scales["aws"]),
    }
    try:
        for name, run in runs.items():
            if name not in wanted:
                continue
            print(f"== {name} (limits scaled x{scales[name]:g})", flush=True)
            try:
                got = run()
            except (ImportError, RuntimeError, OSError) as exc:  # an SDK or server missing
                print(f"  skipped: {type(exc).__name__}: {exc}")
                errors[name] = str(exc)
                continue
            for c in got:
                print(f"  {c.what}: {c.seconds:.1f} s, {c.failed} failed; {c.limited_calls:,} calls on {c.limit}: "
                      f"{c.achieved_per_s:.1f}/s of {c.allowed_per_s:.1f}/s allowed = {c.ratio:.0%}; "
                      f"{c.throttled} throttled by the double; {c.note}", flush=True)
            cases += got
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"scales": {name: scales[name] for name in runs if name in wanted}, "changes": args.changes,
           "cases": [{**asdict(c), "achieved_per_s": round(c.achieved_per_s, 2), "ratio": round(c.ratio, 3)}
                     for c in cases], "skipped": errors}
    (OUT / "cloud.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"results: {OUT / 'cloud.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
