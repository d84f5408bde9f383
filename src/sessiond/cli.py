"""The ``sessiond`` command line: manage signing keys and service credentials, serve, and run
a local cluster.

Every error a user can cause (a :class:`SessiondError` or a click usage error) ends as one line
``sessiond: error: ...`` on stderr with exit code 2, never a traceback. That handling lives in
:meth:`SessiondGroup.main`, so every command added to :data:`main` gets it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, get_args

import click
from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels

from sessiond import __version__, asyncapi
from sessiond.broadcast.stream import StreamSpec
from sessiond.cluster import nats_auth
from sessiond.cluster.local import OWNED_SETTINGS, REDIS_USER, LocalCluster
from sessiond.credentials.store import ALL_SCOPES, CredentialSet, parse_scopes
from sessiond.errors import ConfigError, SessiondError
from sessiond.redis_client import acl_file
from sessiond.runtime import Runtime
from sessiond.settings import PREFIX, Algorithm, Settings, env_name
from sessiond.tokens.access import key_retention
from sessiond.tokens.keys import ROTATION_DELAY, Keyset

EXIT_ERROR = 2
#: The key of the Secret sessiond-redis-users that Redis loads as its aclfile.
ACL_FILE = "users.acl"
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)


class SessiondGroup(click.Group):
    """The root group: turns every user-facing error into one line on stderr, exit code 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; with ``standalone_mode=False`` errors propagate as in click."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except SessiondError as exc:
            _fail(exc.detail)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            _fail(_usage_message(exc))
        except click.Abort:
            click.echo("sessiond: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> NoReturn:
    line = " ".join(message.split())
    click.echo(f"sessiond: error: {line}", err=True)
    sys.exit(EXIT_ERROR)


def _usage_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(ctx, click.Context):
        message += f" (see '{ctx.command_path} --help')"
    return message


@click.group(cls=SessiondGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sessiond")
def main() -> None:
    """sessiond: server-side sessions with stateless JWT verification and instant revocation."""


# --- sessiond serve ------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on [SESSIOND_HOST].")
@click.option("--port", type=int, help="Port to listen on [SESSIOND_PORT].")
@click.option("--redis-url", help="Redis for session records [SESSIOND_REDIS_URL].")
@click.option("--nats-url", help="NATS JetStream for revocations [SESSIOND_NATS_URL].")
@click.option("--keyset-file", help="Signing keys [SESSIOND_KEYSET_FILE].")
@click.option("--credentials-file", help="Service credentials [SESSIOND_CREDENTIALS_FILE].")
@click.option("--log-level", help="debug, info, warning or error [SESSIOND_LOG_LEVEL].")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each a full replica (needs SESSIOND_REDIS_URL when more than 1).",
)
def serve(workers: int, **flags: Any) -> None:
    """Run the session authority.

    Without SESSIOND_REDIS_URL it runs the embedded single-process mode: in-memory store,
    ephemeral key, and a one-time service credential printed at start. With --workers N,
    granian runs N processes, each a full replica with its own denylist following the
    revocation stream, so that one host or pod uses N cores.
    """
    overrides = {name: value for name, value in flags.items() if value is not None}
    settings = Settings.load(os.environ, overrides)
    if workers > 1 and settings.embedded:
        raise ConfigError(
            f"--workers {workers} needs SESSIOND_REDIS_URL: the embedded mode keeps sessions in "
            "one process's memory, which other processes cannot share"
        )
    Runtime(settings)  # load keys and credentials now: a bad file is one line, not a traceback
    os.environ.update({env_name(name): str(value) for name, value in overrides.items()})
    Granian(
        "sessiond.api.app:app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        workers=workers,
        log_level=LogLevels(settings.log_level),
    ).serve()


# --- sessiond proto ------------------------------------------------------------------------


@main.command("proto")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory that receives proto/ (default: the repository around the current one).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file is out of date.")
def proto_command(out: Path | None, check: bool) -> None:
    """Regenerate the wire contract in proto/ (event JSON Schema, AsyncAPI) from the code."""
    try:
        root = out if out is not None else asyncapi.find_root(Path.cwd())
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}; run from the repository or pass --out") from None
    if check:
        drifted = asyncapi.check(root)
        for name in drifted:
            click.echo(f"out of date: {root / name} (run `sessiond proto`)", err=True)
        sys.exit(1 if drifted else 0)
    for path in asyncapi.write(root):
        click.echo(f"wrote {path}")


# --- sessiond deploy -----------------------------------------------------------------------

AUTHORIZATION_HEADER = (
    "# The NATS users of sessiond and what each may do, generated by\n"
    "# `sessiond deploy nats-authorization` from sessiond.cluster.nats_auth: do not edit.\n"
)


def _secret_dir(directory: Path, names: Sequence[str]) -> None:
    """Create ``directory`` for new secret files ``names``, refusing to overwrite one."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in names:
        if (directory / name).exists():
            raise ConfigError(f"{directory / name} exists; remove it or choose another --dir")


def _write_secret(path: Path, text: str) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)
    click.echo(f"wrote {path}")


_dir_argument = click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), metavar="DIR"
)


@main.group()
def deploy() -> None:
    """Files a deployment's NATS and Redis need (deploy/k8s/README.md)."""


@deploy.command("nats-authorization")
def deploy_nats_authorization() -> None:
    """Print the nats-server authorization block: one user per role with its least privilege,
    for the stream of SESSIOND_NATS_STREAM and SESSIOND_NATS_SUBJECT; passwords are read from
    nats-server's environment ($NATS_<USER>_PASSWORD)."""
    spec = StreamSpec.from_settings(Settings.load(os.environ))
    click.echo(AUTHORIZATION_HEADER + nats_auth.authorization(spec, nats_auth.ROLE_USERS), nl=False)


@deploy.command("nats-users")
@_dir_argument
def deploy_nats_users(directory: Path) -> None:
    """Write a new password for each NATS user into DIR/<user> (the keys of the Secret
    sessiond-nats-users)."""
    users = [user for user, _ in nats_auth.ROLE_USERS]
    _secret_dir(directory, users)
    for user in users:
        _write_secret(directory / user, nats_auth.new_password())


@deploy.command("redis-users")
@_dir_argument
@click.option("--user", default=REDIS_USER, show_default=True, help="sessiond's ACL user.")
def deploy_redis_users(directory: Path, user: str) -> None:
    """Write DIR/users.acl (Redis's aclfile: sessiond's ACL user with a new password, and a
    default user that may only PING) and DIR/password (that password, for sessiond): the keys
    of the Secret sessiond-redis-users."""
    _secret_dir(directory, (ACL_FILE, "password"))
    password = nats_auth.new_password()
    _write_secret(directory / ACL_FILE, acl_file(user, password))
    _write_secret(directory / "password", password)


# --- sessiond cluster ----------------------------------------------------------------------


@main.command("cluster")
@click.option(
    "--replicas", type=click.IntRange(1, 32), default=3, show_default=True, help="Replicas."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep keys, credentials, Redis and JetStream data and logs here (default: a "
    "temporary directory, removed at the end).",
)
@click.option("--no-relay", is_flag=True, help="Do not run the outbox relay worker.")
@click.option(
    "--app",
    metavar="MODULE:ATTR",
    help="Also run this ASGI app (a resource backend using sessiond.verifier, e.g. "
    "examples.bank.app:app) under granian, imported from the current directory.",
)
@click.option(
    "--app-replicas",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Replicas of --app.",
)
@click.option(
    "--app-env",
    "app_env_items",
    multiple=True,
    metavar="NAME=VALUE",
    help="A SESSIOND_* setting for the --app replicas only (repeatable), e.g. "
    "SESSIOND_STALE_POLICY=fail_open.",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve Redis and NATS over TLS only, with a test CA made in the directory.",
)
@click.option(
    "--nats-nodes",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Run NATS as a cluster of this many nodes routed on loopback (mutual TLS with "
    "--tls), the stream replicated on each.",
)
@click.option(
    "--redis-sentinel",
    is_flag=True,
    help="Run Redis as a primary, a replica and three Sentinels (automatic failover); the "
    "replicas and the relay find the master through the Sentinels.",
)
def cluster(
    replicas: int,
    directory: Path | None,
    no_relay: bool,
    app: str | None,
    app_replicas: int,
    app_env_items: tuple[str, ...],
    tls: bool,
    nats_nodes: int,
    redis_sentinel: bool,
) -> None:
    """Run nats-server, redis-server and N replicas on 127.0.0.1 until Ctrl-C.

    Prints each replica's URL, the NATS and Redis URLs and a service credential. The
    replicas take the SESSIOND_* settings of this environment (e.g. SESSIOND_STALE_POLICY),
    except the ones the cluster sets itself. With --app, the app replicas get the
    authority's JWKS and NATS URLs, the settings they share with the replicas (issuer,
    audience, stream, staleness budget and policy, ...) and --app-env.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
    for name in sorted(OWNED_SETTINGS.intersection(env)):
        click.echo(f"ignoring {name}: the cluster sets it itself", err=True)
        del env[name]
    app_env = dict(_setting(item) for item in app_env_items)
    local = LocalCluster(
        replicas,
        directory=directory,
        relay=not no_relay,
        env=env,
        app=app,
        app_replicas=app_replicas,
        app_env=app_env,
        tls=tls,
        nats_nodes=nats_nodes,
        redis_sentinel=redis_sentinel,
    )
    apps = f", {app_replicas} x {app}" if app else ""
    click.echo(
        f"starting nats-server, redis-server{apps} and {replicas} replica(s) in {local.directory}"
    )
    # SIGINT too: a shell starts background jobs with SIGINT ignored, yet `kill -INT` must stop.
    previous = signal.signal(signal.SIGTERM, _interrupt), signal.signal(signal.SIGINT, _interrupt)
    try:
        with local:
            _describe(local)
            _watch(local)
    except KeyboardInterrupt:
        click.echo("stopped everything", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGINT and SIGTERM stop the cluster (Ctrl-C)."""
    raise KeyboardInterrupt


def _setting(item: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--app-env``: a ``SESSIOND_*`` name."""
    name, equals, value = item.partition("=")
    if not equals or not name.startswith(PREFIX):
        raise click.BadParameter(f"{item!r}: expected SESSIOND_NAME=VALUE", param_hint="--app-env")
    return name, value


def _describe(local: LocalCluster) -> None:
    rows = [(f"replica {n}", url) for n, url in enumerate(local.urls, 1)]
    rows += [(f"app {n}", url) for n, url in enumerate(local.app_urls, 1)]
    rows += [("nats", local.nats_url), ("redis", local.redis_url)]
    relay = "running (Redis outbox -> NATS stream)" if local.relay else "not started (--no-relay)"
    rows.append(("relay", relay))
    rows.append(("credential", f"{local.credential}  (service credential, all scopes)"))
    for label, value in rows:
        click.echo(f"  {label:<11} {value}")
    shell = " ".join(f"R{n}={url}" for n, url in enumerate(local.urls, 1))
    shell += "".join(f" A{n}={url}" for n, url in enumerate(local.app_urls, 1))
    click.echo(f"\nIn another shell:\n  export {shell} CRED={local.credential}")
    click.echo(f"Logs: {local.directory}/*/output.log")
    click.echo("Ctrl-C stops everything.")


def _watch(local: LocalCluster) -> None:
    """Wait for Ctrl-C; say once when a process exits by itself (the others keep running)."""
    reported: set[str] = set()
    while True:
        time.sleep(0.5)
        for process in local.processes:
            status = process.exit_status()
            if status is not None and process.name not in reported:
                reported.add(process.name)
                click.echo(f"{process.name} exited with {status}; see {process.log}", err=True)


# --- sessiond keys -------------------------------------------------------------------------


def _file_option(setting: str, what: str) -> Callable[[Any], Any]:
    """``--file PATH``, defaulting to the environment variable of ``setting``."""
    return click.option(
        "--file",
        "path",
        envvar=env_name(setting),
        show_envvar=True,
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"The {what} file.",
    )


_keyset_file_option = _file_option("keyset_file", "keyset")


def _retain_option(func: Any) -> Any:
    return click.option(
        "--retain",
        type=click.IntRange(min=0),
        default=None,
        help=(
            "Seconds a retired key still verifies (default: SESSIOND_ACCESS_TTL + "
            "SESSIOND_LEEWAY, 305 with the defaults)."
        ),
    )(func)


@main.group()
def keys() -> None:
    """Manage the keyset that signs access tokens."""


@keys.command("new")
@_keyset_file_option
@click.option(
    "--alg", type=click.Choice(ALGORITHMS), default="ES256", show_default=True, help="Algorithm."
)
@click.option(
    "--force", is_flag=True, help="Replace an existing keyset (its tokens stop verifying)."
)
def keys_new(path: Path, alg: Algorithm, force: bool) -> None:
    """Create a keyset with one new active key."""
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists (use --force to replace it)")
    keyset = Keyset.generate(alg, time.time())
    keyset.save(path)
    click.echo(f"wrote {path}: active key {keyset.active_kid} ({alg})")


@keys.command("rotate")
@_keyset_file_option
@click.option("--alg", type=click.Choice(ALGORITHMS), default=None, help="Default: unchanged.")
@_retain_option
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=float(ROTATION_DELAY),
    show_default=True,
    help="Seconds before the new key starts signing; it is published and verifies at once. The "
    "default covers verifiers that cache the JWKS (max-age 60 s) and every replica reading the "
    "new file (a Kubernetes Secret: about a minute). 0 after a key compromise.",
)
def keys_rotate(path: Path, alg: Algorithm | None, retain: int | None, delay: float) -> None:
    """Make a new key that signs after --delay; the old one verifies --retain seconds more."""
    retain = _default_retain() if retain is None else retain
    now = time.time()
    keyset = Keyset.load(path).rotate(now, alg, retain=retain, delay=delay)
    keyset.save(path)
    click.echo(
        f"rotated {path}: new key {keyset.active_kid} ({keyset.active.alg}) signs from "
        f"{_when(keyset.active.signs_from)}; {len(keyset.keys) - 1} older key(s) kept"
    )


@keys.command("list")
@_keyset_file_option
def keys_list(path: Path) -> None:
    """List the keys (never their private material)."""
    keyset, now, retain = Keyset.load(path), time.time(), _default_retain()
    rows = [
        (
            key.kid,
            key.alg,
            keyset.status(key, now, retain),
            _when(key.created_at),
            _when(key.retired_at),
        )
        for key in keyset.keys
    ]
    _table(("KID", "ALG", "STATUS", "CREATED", "RETIRED"), rows)


def _default_retain() -> int:
    names = {env_name("access_ttl"), env_name("leeway")}
    settings = Settings.load({k: v for k, v in os.environ.items() if k in names})
    return key_retention(settings)


# --- sessiond credentials ------------------------------------------------------------------


_credentials_file_option = _file_option("credentials_file", "credentials")


@main.group()
def credentials() -> None:
    """Manage the service credentials that may call the service routes."""


@credentials.command("new")
@click.option("--name", required=True, help="What the credential is for (shown by list).")
@click.option("--scopes", "scope_list", default="", help="Comma-separated scopes.")
@click.option(
    "--scope", "scope_items", multiple=True, type=click.Choice(ALL_SCOPES), help="A scope."
)
@_credentials_file_option
def credentials_new(path: Path, name: str, scope_list: str, scope_items: tuple[str, ...]) -> None:
    """Issue a credential; its secret is printed once, on stdout."""
    scopes = parse_scopes([*scope_list.split(","), *scope_items])
    current = CredentialSet.load(path) if path.exists() else CredentialSet()
    secret, updated = current.issue(name, scopes, time.time())
    updated.save(path)
    credential = updated.credentials[-1]
    click.echo(
        f"issued credential {credential.id} ({credential.name}) with scopes "
        f"{', '.join(credential.scopes)}; the secret follows.",
        err=True,
    )
    click.echo(secret)
    click.echo("Store it now: it will not be shown again (only its hash is kept).", err=True)


@credentials.command("list")
@_credentials_file_option
def credentials_list(path: Path) -> None:
    """List the credentials (never their secrets nor hashes)."""
    rows = [
        (c.id, c.name, ",".join(c.scopes), _when(c.created_at))
        for c in CredentialSet.load(path).credentials
    ]
    _table(("ID", "NAME", "SCOPES", "CREATED"), rows)


# --- output helpers ------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
