"""ISO 3166-1 alpha-2 country codes and names, from pycountry (imported on first use)."""

from __future__ import annotations

from functools import cache


@cache
def country_names() -> dict[str, str]:
    import pycountry

    return {c.alpha_2: getattr(c, "common_name", c.name) for c in pycountry.countries}


def parse_country(text: str) -> str | None:
    """The code a person means by ``text``: a code in any case (``nl``) or a country's name
    (``Netherlands``, case ignored); None if it is neither. The one reader of typed countries
    (flags, batch files, settings): a request itself takes only the code."""
    given = text.strip()
    if given.upper() in country_names():
        return given.upper()
    wanted = given.casefold()
    return next((code for code, name in country_names().items() if name.casefold() == wanted), None)
