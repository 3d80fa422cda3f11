"""``gateway whatif``: the What-If tool (``gateway.whatif``) on the command line.

``gateway whatif --user ID --app ID [--connector ID] [--home-tenant TID] [--claims JSON |
--claims-file PATH] [--ip IP] [--mfa-done] [--config FILE]`` prints the answer of
``POST /v1.0/identity/conditionalAccess/evaluate`` (JSON, indent 2) and exits 0, whatever the outcome.
Bad input (an unknown user, application or connector, claims that are not a JSON object of at most
64 KiB, a malformed claim or IP address) is one line on stderr and exit 1; a usage error exits 2.
The store is only read (as ``gateway users show`` reads it); nothing is audited, since nothing changes.

Only ``argparse`` is needed to register the command; everything else is imported when it runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.settings.models import Settings
    from gateway.whatif import WhatIfQuery

SettingsLoader = Callable[[argparse.Namespace], "Settings | None"]

MAX_CLAIMS_BYTES = 64 * 1024
OPTION_OF = {
    "user_id": "--user",
    "app_id": "--app",
    "connector_id": "--connector",
    "home_tenant_id": "--home-tenant",
    "ip_address": "--ip",
}


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config: argparse.ArgumentParser,
    load: SettingsLoader,
) -> None:
    """Register ``whatif``; ``load`` reads the configuration of ``--config`` (None after printing its
    problems)."""
    whatif = commands.add_parser(
        "whatif",
        parents=[config],
        help="which policies a sign-in would meet, and the outcome (nothing is signed in)",
        description="Evaluate cross-tenant access and conditional access for a user signing in to an "
        "app, as POST /v1.0/identity/conditionalAccess/evaluate does, and print the answer as JSON.",
    )
    whatif.add_argument("--user", required=True, metavar="ID", help="the directory user's object id")
    whatif.add_argument("--app", required=True, metavar="ID", help="the application's id")
    whatif.add_argument(
        "--connector",
        metavar="ID",
        help="the connector the sign-in comes through (default: the home partner's connector, else the "
        "one of the user's first identity)",
    )
    whatif.add_argument(
        "--home-tenant", metavar="TID", help="the home tenant id the upstream reports (e.g. its tid)"
    )
    claims = whatif.add_mutually_exclusive_group()
    claims.add_argument(
        "--claims", metavar="JSON", help='the upstream claims as a JSON object, e.g. \'{"amr": ["mfa"]}\''
    )
    claims.add_argument("--claims-file", metavar="PATH", help="a file holding the claims JSON object")
    whatif.add_argument("--ip", metavar="IP", help="the client's IP address (for location conditions)")
    whatif.add_argument("--mfa-done", action="store_true", help="TOTP was already done here in this sign-in")
    whatif.set_defaults(command=functools.partial(_whatif, load))


def _fail(message: str) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return 1


class _BadClaims(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _BadClaims(f"the key {key!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _BadClaims(f"{name} is not JSON")


def parse_claims(text: str, source: str) -> dict[str, Any]:
    """A JSON object of at most 64 KiB (UTF-8), without duplicate keys or NaN; ValueError saying why."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CLAIMS_BYTES:
        raise ValueError(f"{source}: the claims are larger than {MAX_CLAIMS_BYTES} bytes")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _BadClaims as exc:
        raise ValueError(f"{source}: not valid claims JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source}: not valid claims JSON: it is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f'{source}: the claims must be a JSON object, such as {{"amr": ["mfa"]}}')
    return value


def _read_claims(args: argparse.Namespace) -> dict[str, Any]:
    if args.claims is not None:
        return parse_claims(args.claims, "--claims")
    if args.claims_file is None:
        return {}
    path = Path(args.claims_file)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CLAIMS_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--claims-file: cannot read {path}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--claims-file: {path} is not UTF-8 text") from None
    return parse_claims(text, f"--claims-file {path}")


def _whatif(load: SettingsLoader, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = load(args)
    if settings is None:
        return 1
    import asyncio

    from gateway.whatif import WhatIfError, WhatIfQuery

    try:
        claims = _read_claims(args)
    except ValueError as exc:
        return _fail(str(exc))
    query = WhatIfQuery(
        user_id=args.user,
        app_id=args.app,
        connector_id=args.connector,
        home_tenant_id=args.home_tenant,
        claims=claims,
        ip_address=args.ip,
        mfa_done_here=bool(args.mfa_done),
    )
    try:
        answer = asyncio.run(_evaluate(settings, query))
    except WhatIfError as exc:
        option = OPTION_OF.get(exc.field, "--claims" if exc.field.startswith("claims") else exc.field)
        return _fail(f"{option}: {exc.message}")
    print(json.dumps(answer, indent=2))
    return 0


async def _evaluate(settings: Settings, query: WhatIfQuery) -> dict[str, Any]:
    import time

    from gateway.store.factory import open_store
    from gateway.whatif import what_if

    store = open_store(settings.store)
    try:
        await store.migrate()
        return await what_if(settings, store, query, int(time.time()))
    finally:
        await store.close()
