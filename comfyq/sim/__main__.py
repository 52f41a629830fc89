"""``python -m comfyq.sim``: run a ComfyUI simulator."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from .knobs import KnobError, Knobs


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m comfyq.sim", description="Run a ComfyUI simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188, help="0 picks a free port (printed on start)")
    parser.add_argument("--output-dir", default=None,
                        help="base directory holding input/, output/ and temp/ (default: a fresh temp dir)")
    parser.add_argument("--journal", default=None, metavar="FILE",
                        help="append '<event> <prompt_id>' lines (queued, started, ended, free) to FILE")
    parser.add_argument("--knobs", default=None, help="instance knobs as a JSON object")
    parser.add_argument("--catalogue", default=None, metavar="FILE",
                        help="serve this recorded /object_info (comfyq catalogue record) instead of the built-in "
                             "nodes; classes without an implementation run generically")
    parser.add_argument("--generic-seconds", type=float,
                        help="time a class without an implementation takes (recorded catalogues)")
    parser.add_argument("--start-delay", type=float, help="seconds to wait before binding the port")
    parser.add_argument("--step-seconds", type=float, help="time per sampler step / upscale tile")
    parser.add_argument("--node-seconds", type=float, help="time per node")
    parser.add_argument("--fail-at", action="append", help="node id or class_type that raises (repeatable)")
    parser.add_argument("--fail-message", help="exception_message for injected failures")
    parser.add_argument("--fail-type", help="exception_type for injected failures")
    parser.add_argument("--hang-at", action="append", help="node id or class_type that never finishes")
    parser.add_argument("--die-at", action="append", help="node id or class_type at which the process exits")
    parser.add_argument("--drop-ws-at", action="append", help="node id or class_type that drops the websocket")
    parser.add_argument("--checkpoint", action="append", dest="checkpoints", help="checkpoint file name offered")
    parser.add_argument("--upscale-model", action="append", dest="upscale_models", help="upscale model offered")
    parser.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                        help="never serve node outputs from the cache")
    parser.add_argument("--previews", action="store_true", default=None, help="send binary preview frames")
    parser.add_argument("--progress-state-per-step", action="store_true", default=None,
                        help="send progress_state before every progress message, as ComfyUI itself does")
    return parser


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    """Combine ``--knobs`` JSON and the individual flags (flags win)."""
    base: dict[str, Any] = json.loads(args.knobs) if args.knobs else {}
    names = ("start_delay", "step_seconds", "node_seconds", "generic_seconds", "fail_at", "fail_message", "fail_type",
             "hang_at", "die_at", "drop_ws_at", "checkpoints", "upscale_models", "cache", "previews",
             "progress_state_per_step")
    base.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    return Knobs.from_dict(base)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve until stopped."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        knobs = knobs_from_args(args)
    except (KnobError, json.JSONDecodeError) as exc:
        parser.error(str(exc))
    if args.catalogue:
        from .recorded import CatalogueFileError, install, read_catalogue

        try:
            install(read_catalogue(args.catalogue))
        except CatalogueFileError as exc:
            parser.error(str(exc))
    from .server import serve

    serve(args.host, args.port, args.output_dir, knobs, args.journal)


if __name__ == "__main__":
    main(sys.argv[1:])
