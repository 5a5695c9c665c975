"""``reanimate`` command line. Parses arguments and calls the library; nothing else.

One module per group of commands (each adds its parsers and runs them); this one builds
the parser, dispatches, and turns user errors and signals into one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from ..errors import ReanimateError
from .animate import add_animate_command, run_animate
from .avatar import AVATAR_COMMANDS, add_avatar_commands, run_avatar_command
from .edit import add_edit_command, run_edit
from .evaluation import add_evaluation_command, run_evaluation_command
from .export import add_export_command, run_export
from .faces import FACE_COMMANDS, add_face_commands, run_face_command
from .heads import HEAD_COMMANDS, add_head_commands, run_head_command
from .live import add_live_command, run_live
from .mmfa import MMFA_COMMANDS, add_mmfa_commands, run_mmfa_command
from .models import MODEL_COMMANDS, add_model_commands, run_model_command
from .training import TRAINING_COMMANDS, add_training_commands, run_training_command
from .ui import add_ui_command, run_ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reanimate", description="Bring a still image to life with the motion of a driving video."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_animate_command(sub)
    add_edit_command(sub)
    add_live_command(sub)
    add_model_commands(sub)
    add_export_command(sub)
    add_face_commands(sub)
    add_training_commands(sub)
    add_head_commands(sub)
    add_mmfa_commands(sub)
    add_evaluation_command(sub)
    add_avatar_commands(sub)
    add_ui_command(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "animate":
        return run_animate(args)
    if args.command == "edit":
        return run_edit(args)
    if args.command == "live":
        return run_live(args)
    if args.command in MODEL_COMMANDS:
        return run_model_command(args)
    if args.command == "export":
        return run_export(args)
    if args.command in FACE_COMMANDS:
        return run_face_command(args)
    if args.command == "evaluate":
        return run_evaluation_command(args)
    if args.command in TRAINING_COMMANDS:
        return run_training_command(args)
    if args.command in HEAD_COMMANDS:
        return run_head_command(args)
    if args.command in MMFA_COMMANDS:
        return run_mmfa_command(args)
    if args.command in AVATAR_COMMANDS:
        return run_avatar_command(args)
    if args.command == "ui":
        return run_ui(args)
    raise AssertionError(args.command)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every temporary output is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reanimate")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread (e.g. called from a library's worker)
            pass
    try:
        return run(args)
    except ReanimateError as exc:
        print(f"reanimate: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"reanimate: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("reanimate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `reanimate faces X | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
