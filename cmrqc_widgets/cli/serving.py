"""``cmrqc serve`` and ``cmrqc hub``: the command-line front of :mod:`cmrqc_widgets.serve.voila`."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

from ..errors import CmrqcError
from ..names import resolve_root, resolve_user
from ..serve.voila import (
    LEAD_NOTEBOOK,
    NOTEBOOK,
    TOKEN_ENV,
    _run,
    ensure_demo,
    find_notebook,
    first_free_port,
    hub_environment,
    serve_environment,
    shipped_dir,
    voila_arguments,
)

__all__ = ["hub_command", "prepare_hub", "prepare_serve", "register", "serve_command"]


def prepare_serve(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """Resolve everything ``cmrqc serve`` needs: the Voilà command line and its environment."""
    root = resolve_root(args.root)
    user = resolve_user(args.user)
    notebook = find_notebook(name=LEAD_NOTEBOOK if getattr(args, "lead", False) else NOTEBOOK)
    config_dir = shipped_dir("voila_config")
    if getattr(args, "demo", False):
        path = ensure_demo(root, user)
        print(f"Demo dataset: {path}", file=sys.stderr)
    wanted = args.port
    args.port = first_free_port(args.ip, wanted)
    if args.port != wanted:
        print(f"Port {wanted} is in use; serving on {args.port} instead.", file=sys.stderr)
    argv = voila_arguments(
        notebook,
        port=args.port,
        ip=args.ip,
        open_browser=not getattr(args, "no_browser", False),
        config_dir=config_dir,
    )
    # Other users of this machine can reach 127.0.0.1 too: every request needs this token
    # (a fresh one per run unless $CMRQC_VOILA_TOKEN gives one); without it no kernel starts.
    args.token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32)
    return argv, serve_environment(root, user, config_dir, ip=args.ip, token=args.token)


def serve_command(args: argparse.Namespace) -> int:
    """``cmrqc serve``: run the Voilà dashboard for one reviewer until Ctrl-C."""
    argv, env = prepare_serve(args)
    what = "lead's view" if getattr(args, "lead", False) else "review dashboard"
    print(
        f"Serving the {what} for {env['CMRQC_USER']} (data root {env['CMRQC_ROOT']}) "
        f"on http://{args.ip}:{args.port}/?token={args.token} — press Ctrl-C to stop.",
        file=sys.stderr,
    )
    return _run(argv, env)


def prepare_hub(args: argparse.Namespace) -> tuple[list[str], dict[str, str], Path]:
    """Resolve ``cmrqc hub``: the JupyterHub command line, its environment and state folder."""
    from ..serve.auth import load_users

    try:
        import jupyterhub  # noqa: F401
    except ImportError as exc:
        raise CmrqcError(
            "JupyterHub is not installed; install the hub extra: pip install 'cmrqc_widgets[hub]'."
        ) from exc
    if shutil.which("configurable-http-proxy") is None:
        raise CmrqcError(
            "configurable-http-proxy is not on PATH; install it with: npm install -g configurable-http-proxy."
        )
    root = resolve_root(args.root)
    users = load_users(root)  # refuses a legacy plaintext file before the hub starts
    if not users:
        print(
            f"No reviewers in {root / 'users.json'} yet: add one with `cmrqc user add NAME --root {root}`.",
            file=sys.stderr,
        )
    state = Path(args.state).expanduser().resolve() if args.state else root / ".hub"
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)  # holds the cookie secret and the hub database
    config = shipped_dir("voila_config") / "jupyterhub_config.py"
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    return argv, hub_environment(root, port=args.port, ip=args.ip, state=state), state


def hub_command(args: argparse.Namespace) -> int:
    """``cmrqc hub``: run a local JupyterHub trial (all reviewers as this OS user) until Ctrl-C."""
    argv, env, state = prepare_hub(args)
    print(
        f"JupyterHub trial on http://{args.ip}:{args.port}/ (data root {env['CMRQC_ROOT']}, "
        f"state {state}) — press Ctrl-C to stop.",
        file=sys.stderr,
    )
    return _run(argv, env, cwd=state)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``hub`` subcommands to the ``cmrqc`` command line."""
    serve = subparsers.add_parser(
        "serve",
        help="open the review dashboard (Voilà) in the browser",
        description="Run the review dashboard with Voilà for one reviewer until Ctrl-C.",
    )
    serve.add_argument(
        "--demo", action="store_true", help="create the demo cohort for the reviewer first, if missing"
    )
    serve.add_argument("--root", help="data root (default: $CMRQC_ROOT, then ~/cmrqc)")
    serve.add_argument(
        "--user", help="reviewer (default: $JUPYTERHUB_USER, then $CMRQC_USER, then the OS user)"
    )
    serve.add_argument("--port", type=int, default=8866, help="port (default: 8866)")
    serve.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")
    serve.add_argument(
        "--lead", action="store_true", help="serve the lead's view (lead.ipynb); --user must be a lead"
    )
    serve.set_defaults(func=serve_command)

    hub = subparsers.add_parser(
        "hub",
        help="run a local JupyterHub trial: reviewers log in with users.json",
        description=(
            "Run JupyterHub with voila_config/jupyterhub_config.py; every reviewer runs as this OS user "
            "(a trial; see voila_config/README.md for production)."
        ),
    )
    hub.add_argument("--root", help="data root holding users.json (default: $CMRQC_ROOT, then ~/cmrqc)")
    hub.add_argument("--port", type=int, default=8000, help="public port (default: 8000)")
    hub.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    hub.add_argument("--state", help="folder for the hub database and cookie secret (default: <root>/.hub)")
    hub.set_defaults(func=hub_command)
