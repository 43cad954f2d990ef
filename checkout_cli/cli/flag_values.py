"""Flag values read with the one parser of their kind (``countries.parse_country``, …)."""

from __future__ import annotations


def country_flag(value: str | None) -> str | None:
    """``--country nl`` / ``--country Netherlands`` → ``NL``. Anything else is passed on as
    given, for the request to refuse with the field's own error (``invalid_country``)."""
    from checkout_cli.countries import parse_country

    if value is None:
        return None
    return parse_country(value) or value
