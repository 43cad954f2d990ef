"""The embedded engine: the checkout flow over one SQLite file. No CLI, no HTTP, no terminal."""

# Order events out: every recorded timeline event is offered to the webhook outbox.
from checkout_cli.engine import webhook_events as _webhook_events

_webhook_events.register()
