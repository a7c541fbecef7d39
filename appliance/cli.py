"""``appliance run | check | sim | demo``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_CONFIG = Path("config.toml")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load_config_or_exit(path: Path):
    from appliance.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    config = _load_config_or_exit(args.config)
    _setup_logging(args.verbose)
    return _run_supervisor(config)


def _run_supervisor(config) -> int:
    """The daemon; a data folder it must not touch (a damaged database) stops it with why."""
    from appliance.store import StoreError
    from appliance.supervisor import Supervisor

    try:
        supervisor = Supervisor(config)
    except StoreError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    return supervisor.run()


def cmd_demo(args: argparse.Namespace) -> int:
    config = _load_config_or_exit(args.config)
    _setup_logging(args.verbose)
    sim_lines = [line.name for line in config.lines if line.driver == "sim"]
    socket_hint = "" if args.config == DEFAULT_CONFIG else f" --config {args.config}"
    print(
        "\nThe appliance runs on simulated modems: " + ", ".join(sim_lines or ["(none)"]) + "\n"
        "In another terminal, place simulated calls:\n"
        f"  .venv/bin/appliance sim{socket_hint} ring {sim_lines[0] if sim_lines else 'gsm0'}"
        " +15557654321\n"
        f"  .venv/bin/appliance sim{socket_hint} status\n"
        "Stop with Ctrl-C.\n",
        file=sys.stderr,
    )
    return _run_supervisor(config)


def cmd_check(args: argparse.Namespace) -> int:
    from appliance.twiml.check import run_check

    return run_check(args.target)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.set_defaults(func=cmd_run)

    demo = commands.add_parser("demo", help="run the daemon on simulated modems, with hints")
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    demo.set_defaults(func=cmd_demo)

    check = commands.add_parser("check", help="validate a TwiML document (path or URL)")
    check.add_argument("target")
    check.set_defaults(func=cmd_check)

    from appliance.sim.cli import add_sim_parser, run_sim_command

    add_sim_parser(commands)
    commands.choices["sim"].set_defaults(func=run_sim_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
