"""Fake payment providers for the tests: small HTTP servers on 127.0.0.1 that the real
``stripe`` and ``mollie-api-python`` SDKs talk to. See each module's docstring."""

from tests.fakes.common import RecordedRequest, WebhookReceiver, loopback_only
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe

__all__ = ["FakeMollie", "FakeStripe", "RecordedRequest", "WebhookReceiver", "loopback_only"]
