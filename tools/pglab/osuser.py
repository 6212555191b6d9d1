"""The unprivileged OS user that runs the servers, and running commands as it."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import time

from .errors import LabError

LAB_USER = "pglab"


def is_root() -> bool:
    return os.geteuid() == 0


def current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def ensure_user(name: str = LAB_USER) -> str:
    """Return the OS user the servers run as.

    As root: ``name`` (created with useradd as a system user without home or
    shell if missing). Otherwise: the current user.
    """
    if not is_root():
        return current_user()
    for attempt in range(5):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
        res = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )
        if res.returncode in (0, 9):  # 9: already exists (a concurrent lab made it)
            continue
        if attempt == 4:
            raise LabError(
                f"cannot create OS user {name!r} to run PostgreSQL (the server refuses to run as root): "
                f"useradd: {res.stderr.strip()}"
            )
        time.sleep(0.5)  # /etc/passwd lock held by a concurrent useradd
    pwd.getpwnam(name)
    return name


def ids(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def clean_env(extra: dict | None = None) -> dict:
    """The environment for PostgreSQL tools: no inherited PG* settings, C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    if extra:
        env.update(extra)
    return env


def run_as(user: str, argv: list[str], *, cwd: str | None = None, env: dict | None = None,
           timeout: float | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run argv as ``user`` (switching uid/gid when we are root), capturing output."""
    kwargs: dict = {}
    if is_root() and user != "root":
        uid, gid = ids(user)
        kwargs.update(user=uid, group=gid, extra_groups=[])
    try:
        return subprocess.run(
            argv, cwd=cwd, env=env if env is not None else clean_env(), capture_output=True,
            text=True, timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL,
            check=False, start_new_session=True, **kwargs,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    except OSError as exc:
        raise LabError(f"cannot run {argv[0]} as {user}: {exc}") from exc


def chown(path: str, user: str, recursive: bool = False) -> None:
    if not is_root():
        return
    uid, gid = ids(user)
    os.chown(path, uid, gid)
    if recursive:
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), uid, gid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_access(user: str, path: str, what: str, mode: str = "x") -> None:
    """Fail clearly when ``user`` cannot reach ``path`` (e.g. a parent folder is 0700)."""
    if not is_root() or user == "root":
        return
    res = run_as(user, ["test", f"-{mode}", path], cwd="/", timeout=10)
    if res.returncode == 0:
        return
    blocker = None
    p = os.path.abspath(path)
    chain = []
    while True:
        chain.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(chain[1:] if os.path.isfile(path) else chain):
        if run_as(user, ["test", "-x", d], cwd="/", timeout=10).returncode != 0:
            blocker = d
            break
    hint = (
        f"folder {blocker} is not traversable by {user} (mode {oct(os.stat(blocker).st_mode & 0o777)}); "
        f"run `chmod o+x {blocker}` or use a location under /tmp"
        if blocker else f"check the permissions of {path}"
    )
    raise LabError(f"OS user {user!r} (which runs the servers) cannot access {what} {path}: {hint}")
