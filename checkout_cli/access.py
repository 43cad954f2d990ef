"""Who may call what, over which face: the one reader of the registry's access declarations.

Each endpoint declares the least token ``scope`` that may call it and the ``faces`` it may be
called over (``endpoints.py``), and the ``mcp_opt_in`` by which an operator may grant an
assistant what MCP refuses by default (``checkout mcp --allow-refunds``); each setting
declares whether it is ``local_only``
(``engine/settings.py``). The HTTP server asks here after authenticating a request and before
running anything; the remote client asks before sending anything, so a secret refused here
never leaves the machine; MCP builds its tool list here and asks again per call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from checkout_cli.endpoints import CHECKOUT_ADMIN, CLI, HTTP, MCP, SCOPES, Endpoint
from checkout_cli.errors import ForbiddenError
from checkout_cli.schema import validate

# The endpoints whose body names settings to change, and the field that names them: a key
# (set, unset) or an object of key → value (import).
SETTING_WRITES = {
    (CHECKOUT_ADMIN, "set-setting"): "key",
    (CHECKOUT_ADMIN, "unset-setting"): "key",
    (CHECKOUT_ADMIN, "import-settings"): "settings",
}
_FACE_NAMES = {HTTP: "over HTTP", MCP: "as an MCP tool"}


def grants(scope: str, needed: str) -> bool:
    """A token's scope grants its own endpoints and those of the scopes before it; an unknown
    scope (a hand-edited row) grants nothing."""
    return scope in SCOPES and SCOPES.index(scope) >= SCOPES.index(needed)


def allowed(endpoint: Endpoint, face: str, scope: str, opt_ins: Collection[str] = ()) -> bool:
    """May ``scope`` call it over ``face``: its faces say so, or over MCP the operator's
    ``opt_ins`` (the ``--allow-NAME`` flags `checkout mcp` was started with) name its
    ``mcp_opt_in``; an endpoint kept off HTTP (local-only) is never opted in."""
    on_face = face in endpoint.faces or (
        face == MCP and HTTP in endpoint.faces and opted_in(endpoint, opt_ins)
    )
    return on_face and grants(scope, endpoint.scope)


def opted_in(endpoint: Endpoint, opt_ins: Collection[str]) -> bool:
    """Whether the operator's opt-ins grant an assistant what this endpoint's declaration
    keeps from MCP by default."""
    return endpoint.mcp_opt_in is not None and endpoint.mcp_opt_in in opt_ins


def opt_in_flag(name: str) -> str:
    """``--allow-refunds``: the `checkout mcp` flag for an opt-in (``MCP_OPT_INS``)."""
    return f"--allow-{name}"


def local_only_settings(endpoint: Endpoint, body: Mapping[str, Any]) -> list[str]:
    """The local-only settings a call would change (none for a call that changes none)."""
    field = SETTING_WRITES.get((endpoint.service, endpoint.name))
    if field is None:
        return []
    from checkout_cli.engine.settings import SETTINGS  # only for the endpoints that need it

    # The keys as the engine will read them (" project_id" is project_id once checked); a body
    # that fails the check is refused with the same error the engine would give. An imported
    # key is stripped here too: padding that the engine would refuse is refused the same way.
    named = getattr(validate(endpoint.request, body), field)
    keys = [str(k) for k in named] if isinstance(named, dict) else [named]
    return [k for k in keys if (s := SETTINGS.get(k.strip())) is not None and s.local_only]


def check_face(endpoint: Endpoint, face: str) -> None:
    """Refuse (``ForbiddenError``) an endpoint its declaration keeps off ``face``."""
    if face not in endpoint.faces:
        raise ForbiddenError(
            "local_only",
            f"{endpoint.service}/{endpoint.name} runs only on the server's own machine, "
            f"never {_FACE_NAMES.get(face, face)}",
            recovery="run it on the server's own machine, against its store, e.g. "
            f"`{_local_command(endpoint.example)}`",
        )


def needed_scope(endpoint: Endpoint, body: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The least scope a call needs, and what asks for it: the endpoint's own, or higher when
    the body sets one of its ``raised_scope`` flags (any value a caller could mean as true)."""
    needed, because = endpoint.scope, f"{endpoint.service}/{endpoint.name}"
    for flag, scope in endpoint.raised_scope:
        if body and body.get(flag) not in (None, False) and not grants(needed, scope):
            needed, because = scope, f"{because} with {flag}"
    return needed, because


def check_scope(endpoint: Endpoint, scope: str, body: Mapping[str, Any] | None = None) -> None:
    """Refuse (``ForbiddenError``) a token whose scope does not reach what the call needs."""
    needed, because = needed_scope(endpoint, body)
    if not grants(scope, needed):
        raise ForbiddenError(
            "forbidden_scope",
            f"{because} needs a token with scope {needed}; this token's scope is {scope}",
            recovery=f"use a token with scope {needed} (on the server's own machine: "
            f"`checkout --db PATH tokens create --name NAME --scope {needed}`)",
        )


def check_body(
    endpoint: Endpoint, face: str, body: Mapping[str, Any], opt_ins: Collection[str] = ()
) -> None:
    """Refuse a change to a local-only setting from any face but the local CLI, and over MCP a
    flag that raises the call's scope (money back out is a person's decision, not an
    assistant's, as refund-payment is no MCP tool) unless the operator's ``opt_ins`` name the
    endpoint's ``mcp_opt_in``."""
    raised = needed_scope(endpoint, body)
    if face == MCP and raised[0] != endpoint.scope and not opted_in(endpoint, opt_ins):
        recovery = f"ask staff to run it: `{endpoint.example}`"
        if endpoint.mcp_opt_in is not None:
            recovery = (
                f"an operator may allow it by starting the MCP server with "
                f"`checkout mcp {opt_in_flag(endpoint.mcp_opt_in)}`; else {recovery}"
            )
        raise ForbiddenError(
            "forbidden_scope",
            f"{raised[1]} is not for an assistant: it needs a person with scope {raised[0]}",
            recovery=recovery,
        )
    keys = local_only_settings(endpoint, body) if face != CLI else []
    if keys:
        what = (
            f"setting {keys[0]} routes secrets or email, or names the project: it changes"
            if len(keys) == 1
            else f"settings {', '.join(keys)} route secrets or email, or name the project: "
            "they change"
        )
        raise ForbiddenError(
            "local_only",
            f"{what} only on the server's own machine, never {_FACE_NAMES.get(face, face)}",
            field=SETTING_WRITES[(endpoint.service, endpoint.name)],
            recovery=f"on the server's own machine: `checkout --db PATH settings set "
            f"{keys[0]} VALUE`",
        )


def _local_command(example: str) -> str:
    """``checkout vault set NAME`` as run against the store itself."""
    return example.replace("checkout ", "checkout --db PATH ", 1)
