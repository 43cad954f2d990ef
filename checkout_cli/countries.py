"""ISO 3166-1 alpha-2 country codes and names, from pycountry (imported on first use)."""

from __future__ import annotations

from functools import cache


@cache
def country_names() -> dict[str, str]:
    import pycountry

    return {c.alpha_2: getattr(c, "common_name", c.name) for c in pycountry.countries}


class _Countries:
    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in country_names()


COUNTRIES = _Countries()
