"""The currencies Mollie takes payments in, and the decimals of each ``amount.value`` string.

Mollie wants "a string containing an exact monetary amount in the given currency", with
exactly the currency's decimal places, and refuses anything else. Read on 2026-12-02 from
https://docs.mollie.com/docs/multicurrency ("Supported currencies": currency, ISO code, decimal
places, payment methods; ISK and JPY have 0 decimal places, every other currency 2). The page's
table did not fit one search excerpt: its rows after NZD are from Mollie's own earlier copy of
it (github.com/mollie/api-documentation, source/payments/multicurrency.rst). That copy also
has BGN, which the current page no longer lists, and RUB, which could not be confirmed on it;
both are left out. Mollie takes no three-decimal currency (no BHD, KWD, ...).
"""

from __future__ import annotations

_TWO_DECIMALS = """
    AED AUD BRL CAD CHF CZK DKK EUR GBP HKD HUF ILS MXN MYR NOK NZD PHP PLN RON SEK SGD THB TWD
    USD ZAR
"""
DECIMALS: dict[str, int] = {**dict.fromkeys(_TWO_DECIMALS.split(), 2), "ISK": 0, "JPY": 0}
