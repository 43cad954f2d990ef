"""Stripe's currency rules, as Stripe publishes them (they are not ISO 4217's).

Stripe amounts are integers in a unit Stripe chooses per currency: usually ISO's minor unit,
but not always (ISK, UGX and MGA differ), and some currencies restrict the last digits. Read on
2026-12-02 from https://docs.stripe.com/currencies and the pages it links:

- "Supported presentment currencies" (#presentment-currencies): the currencies below. The page
  lists them as links and does not fit one search excerpt; the list was checked against a copy
  that names the page as its source (github.com/decent-stuff/decent-cloud,
  website/src/lib/utils/stripe-currencies.ts), plus the five of "Three-decimal currencies".
- "Zero-decimal currencies" (#zero-decimal): the amount is the charge itself ("to charge 500
  JPY, provide an amount value of 500"). Not ISO's list: MGA has two ISO decimals.
- "Three-decimal currencies": amounts in thousandths, but "the least-significant (last) digit
  [must] be 0 ... round amounts to the nearest ten", e.g. 5.124 KWD must be sent as 5120 or 5130.
- "Special cases" (#special-cases):
  ISK "becomes a zero-decimal currency. To maintain backwards compatibility, you must pass in
  amounts with two decimals. The amount value must be evenly divisible by 100 ... to charge
  5 ISK, provide an amount value of 500" (also https://support.stripe.com/questions/
  deprecation-of-fractional-isk-charges-and-refunds: refunds too, Stripe answers
  ``invalid_charge_amount_no_decimal_compatible`` otherwise).
  UGX, though in the zero-decimal list, is the same special case: two decimals, divisible by
  100 (Stripe's answer to a whole-shilling amount, quoted in
  github.com/woocommerce/woocommerce-gateway-stripe/pull/2723: "Currency UGX has become
  effectively zero-decimal and charged amounts must be evenly divisible by 100").
  HUF and TWD: "Stripe treats HUF [TWD] as a zero-decimal currency for payouts, even though you
  can charge two-decimal amounts"; only manual payouts must be divisible by 100. We make no
  payouts, so charges and refunds in HUF and TWD are plain two-decimal amounts.
"""

from __future__ import annotations


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# UGX is in Stripe's zero-decimal list too, but its special case decides: see below.
ZERO_DECIMAL = _codes("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF")
THREE_DECIMAL = _codes("BHD JOD KWD OMR TND")
WHOLE_UNITS_IN_HUNDREDTHS = _codes("ISK UGX")  # two decimals, always ".00"

SUPPORTED = THREE_DECIMAL | _codes(
    """
    USD AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BIF BMD BND BOB BRL BSD BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD
    GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR ISK JMD JPY KES KGS KHR KMF KRW KYD KZT LAK LBP
    LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB
    TJS TOP TRY TTD TWD TZS UAH UGX UYU UZS VND VUV WST XAF XCD XOF XPF YER ZAR ZMW
    """
)


def decimals(currency: str) -> int:
    """How many decimals Stripe's amount unit has for ``currency`` (one in ``SUPPORTED``)."""
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def multiple_of(currency: str) -> int:
    """Every amount in ``currency`` must be a multiple of this many of Stripe's units."""
    if currency in THREE_DECIMAL:
        return 10
    return 100 if currency in WHOLE_UNITS_IN_HUNDREDTHS else 1
