"""Store settings: a fixed table of known keys, each with its type, default and help.

Values are JSON in the ``settings`` table. ``set_setting`` takes either a typed JSON value
or, from the command line, a string that is parsed by the setting's own type.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from checkout_cli.errors import ValidationError
from checkout_cli.values import JSONRefused, load_json, parse_decimal, parse_int, shown


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # bool | int | str | id | url | email | currency | choice | rates | lists
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    # Where a secret is sent (provider API keys, the SMTP password), where mail goes, or who
    # the store is: changed only on the store's own machine, never over HTTP or MCP, so no
    # token can redirect a secret or an email, or make the store answer as another project.
    local_only: bool = False
    maximum: int | None = None  # for ints: larger values would break the engine later


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "project_id",
            "id",
            "local",
            "project id served and expected in /iapi paths",
            local_only=True,
        ),
        Setting("shop_name", "str", "Checkout Shop", "the shop's name in emails"),
        Setting("shop_email", "email", "shop@example.com", "sender address of emails"),
        Setting("currency", "currency", "EUR", "currency of new carts (ISO 4217)"),
        Setting("allow_invoice_checkout", "bool", False, "allow create-payment --provider invoice"),
        Setting(
            "default_shipping_cents",
            "int",
            0,
            "shipping charged when none is given",
            maximum=10**12,
        ),
        Setting("tax_rates", "rates", {}, 'tax percent by country, e.g. {"NL": "21"}'),
        Setting(
            "checkout_ttl_minutes",
            "int",
            1440,
            "minutes before an unpaid checkout expires",
            maximum=10 * 366 * 24 * 60,
        ),
        Setting("auto_complete_paid", "bool", False, "complete checkouts when payment arrives"),
        Setting(
            "email_transport",
            "choice",
            "file",
            "how emails leave",
            ("file", "smtp"),
            local_only=True,
        ),
        Setting(
            "email_outbox_dir",
            "str",
            "",
            "folder for .eml files; default: beside the store",
            local_only=True,
        ),
        Setting("smtp_host", "str", "localhost", "SMTP server host", local_only=True),
        Setting("smtp_port", "int", 587, "SMTP server port", maximum=65535, local_only=True),
        Setting("smtp_starttls", "bool", True, "use STARTTLS", local_only=True),
        Setting(
            "smtp_ssl",
            "bool",
            False,
            "TLS from the first byte (SMTPS, usually port 465); STARTTLS is then not used",
            local_only=True,
        ),
        Setting(
            "smtp_user",
            "str",
            "",
            "SMTP user; password: `checkout vault set smtp_password`",
            local_only=True,
        ),
        Setting("lists", "lists", {}, 'named value lists for line meta, {"NAME": [...]}'),
        Setting("email_payment_links", "bool", False, "email provider payment links"),
        Setting("payment_redirect_url", "url", "", "where providers send customers after paying"),
        Setting("payment_webhook_url", "url", "", "where Mollie reports payment changes"),
        Setting(
            "stripe_api_base",
            "url",
            "https://api.stripe.com",
            "Stripe API address",
            local_only=True,
        ),
        Setting(
            "mollie_api_endpoint",
            "url",
            "https://api.mollie.com",
            "Mollie API address",
            local_only=True,
        ),
        Setting("email_payment_received", "bool", True, "email the customer a payment received"),
        Setting("email_refund", "bool", True, "email the customer a refund"),
        Setting("email_cancellation", "bool", True, "email the customer a cancelled order"),
        Setting("email_shipped", "bool", True, "email the customer a shipment (with tracking)"),
        Setting(
            "invoice_due_days",
            "int",
            14,
            "days an invoice order may stay unpaid before it is overdue",
            maximum=3660,
        ),
        Setting(
            "ship_within_days",
            "int",
            3,
            "days a paid order may wait to ship before support is told",
            maximum=3660,
        ),
        Setting(
            "refund_pending_days",
            "int",
            7,
            "days a refund may stay pending at the provider before support is told",
            maximum=3660,
        ),
        Setting(
            "provider_timeout_seconds",
            "int",
            20,
            "seconds to wait for a payment provider",
            maximum=600,
        ),
        Setting(
            "webhook_timeout_seconds",
            "int",
            10,
            "seconds to wait for a webhook receiver (a claim is retaken after 3x this)",
            maximum=600,
        ),
        Setting(
            "webhook_max_attempts",
            "int",
            12,
            "attempts before a webhook delivery is given up (dead)",
            maximum=100,
        ),
        Setting(
            "webhook_retry_base_seconds",
            "int",
            10,
            "first wait before a failed webhook delivery is retried (doubling, at most 1 h)",
            maximum=3600,
        ),
    )
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bad(key: str, message: str, recovery: str | None = None) -> ValidationError:
    return ValidationError("invalid_setting", f"{key}: {message}", field="value", recovery=recovery)


def coerce(setting: Setting, value: Any) -> Any:
    """Check a value against the setting's type; strings from the command line are parsed."""
    key, kind = setting.key, setting.kind
    if kind == "bool":
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, bool):
            return value
        raise _bad(key, f"expected true or false, got {shown(value)}")
    if kind == "int":
        if isinstance(value, str) and (number := parse_int(value)) is not None:
            value = number
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            if setting.maximum is not None and value > setting.maximum:
                raise _bad(key, f"expected at most {setting.maximum}, got {shown(value)}")
            return value
        raise _bad(key, f"expected a whole number >= 0, got {shown(value)}")
    if kind in ("rates", "lists") and isinstance(value, str):
        try:
            value = load_json(value)
        except JSONRefused as exc:
            raise _bad(key, f"expected a JSON object ({exc})", SETTINGS[key].help) from None
    if kind == "rates":
        return _coerce_rates(key, value)
    if kind == "lists":
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise _bad(key, "expected a JSON object of lists", SETTINGS[key].help)
        return value
    if not isinstance(value, str):
        raise _bad(key, f"expected text, got {shown(value)}")
    from checkout_cli import schema

    # Typed by a person: padding is dropped and a currency may be in lower case.
    given = value.strip().upper() if kind == "currency" else value.strip()
    try:
        if kind == "choice":
            return schema.check(_choice_type(setting.choices), given, "value")
        return schema.check(_text_types()[kind], given, "value")
    except ValidationError as exc:
        raise _bad(key, exc.message.removeprefix("value: "), exc.recovery) from None


@cache
def _text_types() -> dict[str, Any]:
    """The request field types a text setting is checked with, by its kind."""
    from checkout_cli import schema

    return {
        "email": Annotated[str, schema.Email()],
        "currency": Annotated[str, schema.Currency()],
        "str": Annotated[str, schema.Text(500, min_length=0)],
        "id": Annotated[
            str,
            schema.Text(64, pattern=r"[A-Za-z0-9][A-Za-z0-9_.\-]*", code="invalid_setting"),
        ],
        "url": Annotated[
            str, schema.Text(2000, pattern=r"(https?://\S+)?", code="invalid_url", min_length=0)
        ],
    }


@cache
def _choice_type(choices: tuple[str, ...]) -> Any:
    from checkout_cli import schema

    return Annotated[str, schema.Choice(choices)]


def _coerce_rates(key: str, value: Any) -> dict[str, str]:
    from checkout_cli.countries import parse_country

    if not isinstance(value, dict):
        raise _bad(key, "expected a JSON object of country: percent", SETTINGS[key].help)
    rates = {}
    for country, rate in value.items():
        code = parse_country(str(country))
        if code is None:
            raise _bad(key, f"{shown(country)} is not an ISO 3166-1 alpha-2 country code")
        percent = parse_decimal(str(rate)) if isinstance(rate, (str, int, float)) else None
        if percent is None or isinstance(rate, bool):
            raise _bad(key, f"{shown(rate)} is not a percentage such as 21 or 9.5")
        if not Decimal(0) <= percent <= Decimal(100):
            raise _bad(key, f"{shown(rate)} is not between 0 and 100")
        rates[code] = str(percent)
    return rates


def unknown(key: str) -> ValidationError:
    return ValidationError(
        "unknown_setting",
        f"no setting named {shown(key)}",
        field="key",
        recovery="known settings: " + ", ".join(SETTINGS),
    )


def read_all(conn: sqlite3.Connection) -> dict[str, Any]:
    stored = {
        row["key"]: json.loads(row["value"]) for row in conn.execute("SELECT * FROM settings")
    }
    return {key: stored.get(key, s.default) for key, s in SETTINGS.items()}


def read(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return json.loads(row["value"]) if row else SETTINGS[key].default


_NAMED_PROBLEMS = 30  # more than there are settings: every bad known key is named


def check_all(values: dict[str, Any]) -> dict[str, Any]:
    """Every value checked against its setting's type; one error naming every bad key."""
    checked, problems, unknowns = {}, [], 0
    for key, value in values.items():
        setting = SETTINGS.get(key)
        if setting is None:
            unknowns += 1
            problems.append(f"{shown(key)}: no such setting")
            continue
        try:
            checked[key] = coerce(setting, value)
        except ValidationError as exc:
            problems.append(exc.message)
    if problems:
        named = problems[:_NAMED_PROBLEMS]
        if len(problems) > len(named):  # one line stays readable: a whole wrong file is not
            named.append(f"and {len(problems) - len(named)} more")
        raise ValidationError(
            "unknown_setting" if unknowns == len(problems) else "invalid_setting",
            f"{len(problems)} of {len(values)} settings refused, nothing changed: "
            + "; ".join(named),
            field="settings",
            recovery="known settings: " + ", ".join(SETTINGS) if unknowns else None,
        )
    return checked


def store(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Store a value already checked (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def write(conn: sqlite3.Connection, key: str, value: Any) -> Any:
    """Validate and store one setting (inside the caller's transaction); returns the value."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise unknown(key)
    value = coerce(setting, value)
    store(conn, key, value)
    return value
