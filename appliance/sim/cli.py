"""``appliance sim …``: drive the simulated modems of a running daemon from a shell."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from appliance.sim.client import SimClient, SimControlError, SimUnavailableError
from appliance.sim.far_end import FAR_END_BEHAVIOURS

DEFAULT_CONFIG = Path("config.toml")
DEFAULT_DATA_DIR = "/var/lib/appliance"
SOCKET_NAME = "sim.sock"


class _ConfigError(Exception):
    pass


def add_sim_parser(subparsers: Any) -> None:
    """Add the ``sim`` command and its sub-commands to an argparse sub-parser set."""
    sim = subparsers.add_parser(
        "sim",
        help="place calls, press keys, play and record audio on simulated lines",
        description="Drive the simulated modems of a running `appliance run`.",
    )
    sim.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"config file naming data_dir (default: ./{DEFAULT_CONFIG})",
    )
    sim.add_argument(
        "--socket", type=Path, help=f"control socket (default: <data_dir>/{SOCKET_NAME})"
    )
    commands = sim.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)

    commands.add_parser("status", help="show every simulated line")

    ring = commands.add_parser("ring", help="an incoming call rings on LINE")
    ring.add_argument("line", metavar="LINE")
    ring.add_argument("caller_id", metavar="CALLER_ID", help='caller number ("" = withheld)')
    ring.add_argument("--name", default="", help="caller name for +CLIP")

    press = commands.add_parser("press", help="the caller on LINE presses keys")
    press.add_argument("line", metavar="LINE")
    press.add_argument("keys", metavar="KEYS", help="0-9 * # A-D, e.g. 1234#")
    press.add_argument("--inband", action="store_true", help="as tones in the audio")
    press.add_argument("--ms", type=int, default=100, help="tone length for --inband")

    play = commands.add_parser("play", help="the caller on LINE says a sound file")
    play.add_argument("line", metavar="LINE")
    play.add_argument("wav", metavar="WAV", type=Path)

    hangup = commands.add_parser("hangup", help="the caller on LINE hangs up")
    hangup.add_argument("line", metavar="LINE")

    record = commands.add_parser("record", help="save what LINE's caller has heard")
    record.add_argument("line", metavar="LINE")
    record.add_argument("out", metavar="OUT.wav", type=Path)

    far_end = commands.add_parser(
        "far-end", help="what the party LINE calls next does (answer, busy, no-answer, ...)"
    )
    far_end.add_argument("line", metavar="LINE")
    far_end.add_argument("behaviour", metavar="BEHAVIOUR", choices=FAR_END_BEHAVIOURS,
                         help=" | ".join(FAR_END_BEHAVIOURS))  # fmt: skip
    far_end.add_argument("--after", type=float, default=1.0, metavar="S",
                         help="seconds before it answers or is busy (default 1.0)")  # fmt: skip

    answer = commands.add_parser("answer", help="the party LINE is calling answers now")
    answer.add_argument("line", metavar="LINE")

    sim.set_defaults(func=run_sim_command)


def socket_path(args: argparse.Namespace) -> Path:
    """``--socket``, else ``[appliance].data_dir`` of the config file + ``/sim.sock``."""
    if getattr(args, "socket", None):
        return args.socket
    config = Path(getattr(args, "config", None) or DEFAULT_CONFIG)
    data_dir = DEFAULT_DATA_DIR
    if config.is_file():
        try:
            with config.open("rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise _ConfigError(f"{config}: {exc}") from exc
        section = document.get("appliance", {})
        value = section.get("data_dir", DEFAULT_DATA_DIR) if isinstance(section, dict) else None
        if not isinstance(value, str) or not value:
            raise _ConfigError(f"{config}: appliance.data_dir must be a non-empty string")
        data_dir = value
    path = Path(data_dir).expanduser()
    if not path.is_absolute():  # relative to the config file, as the daemon reads it
        path = config.resolve().parent / path
    return path / SOCKET_NAME


def _print_status(lines: dict[str, dict[str, Any]]) -> None:
    if not lines:
        print("no simulated lines")
        return
    header = f"{'LINE':<10} {'STATE':<8} {'NUMBER':<16} {'CALLER':<16} {'DIALED':<16} {'AUDIO':<5} "
    print(header + "FRAMES  UNDERRUNS  OVERRUNS")
    for name, line in lines.items():
        stats = line.get("stats", {})
        print(
            f"{name:<10} {line['state']:<8} {line['number']:<16} {line['caller_id'] or '-':<16} "
            f"{line.get('dialed') or '-':<16} "
            f"{'on' if line['audio'] else 'off':<5} {stats.get('frames', 0):>6} "
            f"{stats.get('underruns', 0):>10} {stats.get('overruns', 0):>9}"
        )


def run_sim_command(args: argparse.Namespace) -> int:
    """Carry out one ``appliance sim`` command; the process exit code."""
    try:
        client = SimClient(socket_path(args))
        command = args.sim_command
        if command == "status":
            _print_status(client.status())
        elif command == "ring":
            client.ring(args.line, args.caller_id, args.name)
            print(f"{args.line}: ringing from {args.caller_id or 'a withheld number'}")
        elif command == "press":
            client.press(args.line, args.keys, inband=args.inband, ms=args.ms)
            how = "in band" if args.inband else "out of band"
            print(f"{args.line}: pressed {args.keys} ({how})")
        elif command == "play":
            start = client.play(args.line, args.wav)
            print(f"{args.line}: playing {args.wav} from sample {start}")
        elif command == "hangup":
            client.hangup(args.line)
            print(f"{args.line}: hung up")
        elif command == "far-end":
            client.far_end(args.line, args.behaviour, args.after)
            print(f"{args.line}: the next party called will {args.behaviour}")
        elif command == "answer":
            client.answer(args.line)
            print(f"{args.line}: the called party answered")
        elif command == "record":
            samples = client.record(args.line, args.out)
            print(f"{args.line}: wrote {samples / 8000:.2f} s to {args.out}")
        else:
            print(f"appliance sim: unknown command {command!r}", file=sys.stderr)
            return 2
    except _ConfigError as exc:
        print(f"appliance sim: {exc}", file=sys.stderr)
        return 2
    except SimUnavailableError as exc:
        print(f"appliance sim: {exc}", file=sys.stderr)
        return 3
    except SimControlError as exc:
        print(f"appliance sim: {exc}", file=sys.stderr)
        return 1
    return 0
