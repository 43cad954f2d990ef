"""Where things live and how a command is configured: flag > env > profile > default.

Profiles are tables in ``config.toml`` in the platform's config dir::

    default_profile = "shop"
    [profiles.shop]
    db = "~/shops/main.db"

The store lives in the platform's data dir unless a flag, ``CHECKOUT_DB`` or the profile
says otherwise. With ``remote`` (``--remote``, ``CHECKOUT_REMOTE``) calls go over HTTP to
that server's ``project`` instead; its token comes only from ``CHECKOUT_TOKEN`` or the
profile, never from a flag (flags end up in shell history and process lists).
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkout_cli.errors import UsageError

APP_NAME = "checkout-cli"
PROFILE_KEYS = ("db", "remote", "project", "token")


def config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME))


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def config_file() -> Path:
    return config_dir() / "config.toml"


def load_config_file() -> dict[str, Any]:
    path = config_file()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError("bad_config", f"{path}: {exc}", recovery="fix or remove the file") from exc


PG_SCHEMES = ("postgresql://", "postgres://")

StoreTarget = Path | str  # the path of an SQLite file, or a PostgreSQL URL


def is_pg_url(target: StoreTarget) -> bool:
    """Whether ``target`` names a PostgreSQL database (a URL) rather than an SQLite file."""
    return isinstance(target, str) and target.lower().startswith(PG_SCHEMES)


def store_target(text: str) -> StoreTarget:
    """A store as written (--db, CHECKOUT_DB, a profile): a PostgreSQL URL, else a file path."""
    return text if is_pg_url(text) else Path(text).expanduser()


@dataclass(frozen=True)
class Settings:
    db: StoreTarget  # a Path, or a postgresql:// URL (str)
    profile: str | None
    db_given: bool = False  # chosen by flag, env or profile rather than the default
    remote: str | None = None
    project: str | None = None
    token: str | None = field(default=None, repr=False)
    json: bool = False
    no_input: bool = False
    debug: bool = False

    @property
    def actor(self) -> str:
        """Who is acting, for the checkout timeline."""
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "operator"


def resolve(
    *,
    db: str | None,
    profile: str | None,
    remote: str | None = None,
    project: str | None = None,
    json: bool = False,
    no_input: bool = False,
    debug: bool = False,
    env: dict[str, str] | None = None,
) -> Settings:
    env = dict(os.environ) if env is None else env
    config = load_config_file()
    name = profile or env.get("CHECKOUT_PROFILE") or config.get("default_profile")
    values: dict[str, Any] = {}
    if name:
        profiles = config.get("profiles", {})
        if name not in profiles:
            known = ", ".join(profiles) or "none"
            raise UsageError(
                "unknown_profile",
                f"no profile named {name!r} in {config_file()}",
                recovery=f"profiles: {known}",
            )
        values = profiles[name]
    chosen = db or env.get("CHECKOUT_DB") or values.get("db")
    path = store_target(chosen) if chosen else data_dir() / "checkout.db"
    no_input = no_input or env.get("CI", "").lower() in ("1", "true", "yes")
    return Settings(
        db=path,
        profile=name,
        db_given=bool(chosen),
        remote=remote or env.get("CHECKOUT_REMOTE") or values.get("remote"),
        project=project or env.get("CHECKOUT_PROJECT") or values.get("project"),
        token=env.get("CHECKOUT_TOKEN") or values.get("token"),
        json=json,
        no_input=no_input,
        debug=debug,
    )


def save_profile(name: str, values: dict[str, str], *, make_default: bool = False) -> Path:
    """Add or replace a profile in config.toml (written 0600: it may hold a token)."""
    import tomli_w

    unknown = set(values) - set(PROFILE_KEYS)
    if unknown:
        raise UsageError("unknown_profile_key", f"unknown profile keys: {sorted(unknown)}")
    config = load_config_file()
    config.setdefault("profiles", {})[name] = values
    if make_default:
        config["default_profile"] = name
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        tomli_w.dump(config, handle)
    return path
