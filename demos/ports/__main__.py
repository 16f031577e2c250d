"""python -m demos.ports [FILE or -] [--kind KIND] [--json]: analyse ports from a file or standard input."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .analyze import KINDS, analyze
from .explain import NOTHING_PUBLISHED, sentences
from .model import Analysis, PortsInputError


def print_text(analysis: Analysis) -> None:
    print(f"Read as: {analysis.kind}")
    for line in sentences(analysis) or [NOTHING_PUBLISHED]:
        print(f"  {line}")
    for diagnostic in analysis.diagnostics:
        print(f"{diagnostic.severity}: {diagnostic.code} at {diagnostic.source}\n  {diagnostic.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demos.ports", description="Where traffic to published ports goes, and what is wrong with it.")
    parser.add_argument("file", nargs="?", default="-", help="docker run commands, a compose file or Kubernetes manifests; - for standard input")
    parser.add_argument("--kind", choices=KINDS, default="auto")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    arguments = parser.parse_args(argv)
    try:
        if arguments.file == "-":
            text = sys.stdin.read()
        else:
            with open(arguments.file, encoding="utf-8") as file:
                text = file.read()
        analysis = analyze(text, arguments.kind)
    except (OSError, UnicodeDecodeError, PortsInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if arguments.json:
            print(json.dumps(analysis.to_dict(), indent=2))
        else:
            print_text(analysis)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (| head): not an error of ours. Point stdout at nowhere so exit's flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
