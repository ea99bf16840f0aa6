"""How a webhook's failed answer becomes the run's error (notify.channels._webhook_error, on the
connector kit's status mapping): which statuses the next run retries, and what each message says."""

from __future__ import annotations

from email.message import Message as Headers

import pytest

from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.notify.channels import _webhook_error


def headers(**values: str) -> Headers:
    out = Headers()
    for key, value in values.items():
        out[key.replace("_", "-")] = value
    return out


@pytest.mark.parametrize(("status", "head", "kind", "says"), [
    (429, {}, TargetUnavailable, "(rate limited; retried next run)"),
    (403, {"x_ratelimit_remaining": "0"}, TargetUnavailable, "(rate limited; retried next run)"),
    (403, {"retry_after": "30"}, TargetUnavailable, "(rate limited; retried next run)"),
    (500, {}, TargetUnavailable, "HTTP 500 gone (retried next run)"),
    (503, {}, TargetUnavailable, "(retried next run)"),
    (408, {}, TargetUnavailable, "(retried next run)"),
    (302, {}, PermanentTargetError, ": redirected; jitpol does not follow redirects"),
    (401, {}, PermanentTargetError, "HTTP 401 gone (check the webhook URL)"),
    (403, {}, PermanentTargetError, "(check the webhook URL)"),
    (404, {}, PermanentTargetError, "HTTP 404 gone"),
    (400, {}, PermanentTargetError, "HTTP 400 gone"),
])
def test_status_to_error(status: int, head: dict[str, str], kind: type[Exception], says: str) -> None:
    error = _webhook_error(status, headers(**head), "gone", "slack webhook")
    assert type(error) is kind
    assert str(error).startswith(f"slack webhook: HTTP {status} gone") and str(error).endswith(says)


def test_no_detail_leaves_no_trailing_space() -> None:
    assert str(_webhook_error(404, headers(), "", "webhook")) == "webhook: HTTP 404"
