"""The Lab: a primary + streaming standby + WAL archive under one folder."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time

from . import osuser, seed as seedmod
from .binaries import client_bindir, find_bindir, server_version
from .errors import LabError

STATE_FILE = "lab.json"
LOCK_FILE = ".lab.lock"
SUPERUSER = "postgres"
SLOT = "pglab_standby"
HOST = "127.0.0.1"
PORT_RANGE = (20000, 29999)  # below Linux's ephemeral range (32768+)
# Characters allowed in DIR: it ends up in server settings, archive/restore shell
# commands and unix_socket_directories (a comma/space separated list).
_DIR_OK = re.compile(r"^[A-Za-z0-9._/+@=:~-]+$")
_SOCKET_MAX = 100


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_lab_dir() -> str:
    """``$PGLAB_DIR`` if set, else ``<repo>/.lab``."""
    return os.environ.get("PGLAB_DIR") or os.path.join(repo_root(), ".lab")


def parse_lsn(lsn: str) -> int:
    hi, lo = lsn.strip().split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # PostgreSQL itself binds with SO_REUSEADDR, so TIME_WAIT leftovers are fine;
        # on Linux a LISTENing socket still makes this bind fail.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _conf_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Lab:
    """A local PostgreSQL lab rooted at ``dir``.

    ``pg``: 'auto', a major version ('15', '18') or a bindir; only used when the
    lab is first created (an existing lab keeps its bindir; asking for another
    major or bindir raises LabError).
    """

    def __init__(self, dir: str | None = None, pg: str | int | None = "auto", verbose: bool = False):
        self.dir = os.path.abspath(os.path.expanduser(dir or default_lab_dir()))
        self.pg = "auto" if pg in (None, "") else str(pg)
        self.verbose = verbose
        self._state: dict | None = None
        self._bindir: str | None = None
        self._lock_fd: int | None = None
        self._lock_depth = 0

    # ------------------------------------------------------------------ basics
    def __repr__(self) -> str:
        return f"Lab({self.dir!r}, pg={self.pg!r})"

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"lab: {msg}", file=sys.stderr, flush=True)

    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, STATE_FILE)

    def exists(self) -> bool:
        return os.path.isfile(self.state_path)

    @property
    def state(self) -> dict:
        """The parsed ``DIR/lab.json`` (LabError when there is no lab)."""
        if self._state is None:
            try:
                with open(self.state_path, encoding="utf-8") as f:
                    self._state = json.load(f)
            except FileNotFoundError:
                raise LabError(f"no lab at {self.dir} (run `tools/lab start --dir {self.dir}`)") from None
            except (OSError, ValueError) as exc:
                raise LabError(f"cannot read {self.state_path}: {exc}") from exc
        return self._state

    def _save_state(self) -> None:
        tmp = self.state_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._state, f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_path)

    @property
    def bindir(self) -> str:
        if self.exists():
            return self.state["bindir"]
        if self._bindir is None:
            self._bindir = find_bindir(self.pg)
        return self._bindir

    @property
    def client_bindir(self) -> str:
        """Where the lab's psql and pg_basebackup are: the server's bindir, or for a server-only bindir (the npm
        packages of 14, 16, 17) the newest client programs found (labs made before this key: the bindir)."""
        if self.exists():
            return self.state.get("client_bindir") or self.state["bindir"]
        return client_bindir(self.bindir, server_version(self.bindir)[1])

    def _bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def _client(self, name: str) -> str:
        return os.path.join(self.client_bindir, name)

    def node(self, name: str) -> dict:
        nodes = self.state["nodes"]
        if name not in nodes:
            raise LabError(f"lab at {self.dir} has no {name!r} node (nodes: {', '.join(nodes)})")
        return nodes[name]

    @property
    def os_user(self) -> str:
        return self.state["os_user"]

    def conninfo(self, node: str = "primary", db: str = "postgres") -> dict:
        n = self.node(node)
        return {"host": n["host"], "port": n["port"], "user": self.state["superuser"],
                "password": self.state["password"], "dbname": db}

    def env(self, node: str = "primary", db: str | None = None) -> dict:
        """libpq environment variables for ``node`` (PGHOST, PGPORT, ...)."""
        if db is None:
            db = seedmod.DEFAULT_DB if seedmod.DEFAULT_DB in self.state.get("seeded", {}) else "postgres"
        c = self.conninfo(node, db)
        return {"PGHOST": c["host"], "PGPORT": str(c["port"]), "PGUSER": c["user"],
                "PGPASSWORD": c["password"], "PGDATABASE": db}

    def dsn(self, node: str = "primary", db: str = "postgres") -> str:
        c = self.conninfo(node, db)
        return " ".join(f"{k}={v}" for k, v in c.items())

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def _locked(self):
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        if not os.path.isdir(self.dir):
            raise LabError(f"no lab at {self.dir} (run `tools/lab start --dir {self.dir}`)")
        fd = os.open(os.path.join(self.dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            self._state = None  # re-read under the lock
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)

    # ------------------------------------------------------------------ running things
    def _run_server_tool(self, argv: list[str], timeout: float = 120, env: dict | None = None):
        return osuser.run_as(self.os_user, argv, cwd=self.dir, env=env or osuser.clean_env(), timeout=timeout)

    def psql(self, node: str, sql: str, db: str = "postgres", *, timeout: float = 300,
             single_transaction: bool = False) -> str:
        """Run ``sql`` with ``psql -X -q -A -t`` as the superuser over TCP; return stdout.

        Raises LabError (with psql's stderr) on any error (ON_ERROR_STOP=1).
        """
        c = self.conninfo(node, db)
        argv = [self._client("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", c["host"], "-p", str(c["port"]), "-U", c["user"], "-d", db, "-f", "-"]
        if single_transaction:
            argv.insert(1, "-1")
        env = osuser.clean_env({"PGPASSWORD": c["password"], "PGCONNECT_TIMEOUT": "10",
                                "PGAPPNAME": "pglab"})
        try:
            res = subprocess.run(argv, input=sql, capture_output=True, text=True, env=env,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"psql on {node} ({db}) timed out after {timeout}s") from exc
        except OSError as exc:
            raise LabError(f"cannot run {argv[0]}: {exc}") from exc
        if res.returncode != 0:
            raise LabError(f"psql on {node} (db {db}) failed (exit {res.returncode}): "
                           f"{res.stderr.strip() or res.stdout.strip()}")
        return res.stdout.rstrip("\n")

    def is_running(self, node: str) -> bool:
        n = self.node(node)
        if not os.path.isfile(os.path.join(n["datadir"], "PG_VERSION")):
            return False
        res = self._run_server_tool([self._bin("pg_ctl"), "status", "-D", n["datadir"]], timeout=30)
        return res.returncode == 0

    def _server_log_tail(self, datadir: str) -> str:
        parts = []
        for p in (os.path.join(datadir, "log", "pg_ctl.log"), os.path.join(datadir, "log", "postgresql.log")):
            t = _tail(p)
            if t:
                parts.append(f"--- tail of {p} ---\n{t}")
        return "\n".join(parts) or "(no server log found)"

    def _start_node(self, name: str) -> bool:
        """Start ``name`` unless running; True if it was started now."""
        n = self.node(name)
        if self.is_running(name):
            return False
        if not port_free(n["port"]):
            raise LabError(
                f"port {n['port']} ({name} of the lab at {self.dir}) is in use by another process; "
                f"stop that process, or `tools/lab destroy --dir {self.dir}` and start again to pick new ports"
            )
        logdir = os.path.join(n["datadir"], "log")
        if not os.path.isdir(logdir):
            os.mkdir(logdir, 0o700)
            osuser.chown(logdir, self.os_user)
        self._say(f"starting {name} on {n['host']}:{n['port']}")
        res = self._run_server_tool(
            [self._bin("pg_ctl"), "start", "-D", n["datadir"], "-w", "-t", "60",
             "-l", os.path.join(logdir, "pg_ctl.log")], timeout=90)
        if res.returncode != 0:
            raise LabError(
                f"pg_ctl start of {name} ({n['datadir']}) failed (exit {res.returncode}):\n"
                f"{(res.stdout + res.stderr).strip()}\n{self._server_log_tail(n['datadir'])}"
            )
        return True

    def _stop_node(self, name: str, mode: str = "fast") -> bool:
        n = self.node(name)
        if not self.is_running(name):
            return False
        self._say(f"stopping {name} ({mode})")
        res = self._run_server_tool(
            [self._bin("pg_ctl"), "stop", "-D", n["datadir"], "-m", mode, "-w", "-t", "60"], timeout=90)
        if res.returncode != 0:
            raise LabError(f"pg_ctl stop of {name} failed: {(res.stdout + res.stderr).strip()}\n"
                           f"{self._server_log_tail(n['datadir'])}")
        return True

    # ------------------------------------------------------------------ creation
    def _check_dir(self, create: bool = True, user: str | None = None) -> None:
        if not _DIR_OK.match(self.dir):
            raise LabError(
                f"bad DIR {self.dir!r}: only letters, digits and . _ - + @ = : ~ / are allowed "
                "(the path goes into server settings and archive/restore shell commands)"
            )
        if os.path.exists(self.dir) and not os.path.isdir(self.dir):
            raise LabError(f"bad DIR {self.dir}: exists and is not a directory")
        if os.path.isdir(self.dir) and not self.exists():
            extra = [e for e in os.listdir(self.dir) if e not in (LOCK_FILE, STATE_FILE + ".tmp")]
            if extra:
                raise LabError(
                    f"bad DIR {self.dir}: exists, is not empty and holds no {STATE_FILE} "
                    f"(found {', '.join(sorted(extra)[:5])}); choose an empty or new folder"
                )
        if create:
            # before creating anything: the server user must be able to reach DIR
            anc = self.dir
            while not os.path.isdir(anc):
                anc = os.path.dirname(anc)
            if anc != self.dir and not os.access(anc, os.W_OK | os.X_OK):
                raise LabError(f"bad DIR {self.dir}: cannot create it in {anc} "
                               f"(not writable by {osuser.current_user()})")
            if user:
                osuser.check_access(user, anc, "DIR" if anc == self.dir else "the parent folder of DIR", "x")
        if not create:
            return
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as exc:
            raise LabError(f"bad DIR {self.dir}: cannot create it: {exc}") from exc
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise LabError(f"bad DIR {self.dir}: not writable by {osuser.current_user()}")

    def _socket_dir_for(self) -> str:
        inside = os.path.join(self.dir, "run")
        if len(os.path.join(inside, ".s.PGSQL.65535")) < _SOCKET_MAX:
            return inside
        h = hashlib.sha1(self.dir.encode()).hexdigest()[:12]
        return f"/tmp/pglab-{h}"

    def _pick_port(self, taken: set[int], socket_dir: str) -> int:
        rng = random.SystemRandom()
        for _attempt in range(500):
            p = rng.randint(*PORT_RANGE)
            if p in taken or os.path.exists(os.path.join(socket_dir, f".s.PGSQL.{p}.lock")):
                continue
            if port_free(p):
                return p
        raise LabError(f"no free TCP port found on {HOST} in {PORT_RANGE[0]}-{PORT_RANGE[1]}")

    def _new_state(self) -> dict:
        bindir = self._bindir or find_bindir(self.pg)
        version, major = server_version(bindir)
        user = osuser.ensure_user()
        osuser.check_access(user, os.path.join(bindir, "postgres"), "the PostgreSQL binaries", "x")
        res = osuser.run_as(user, [os.path.join(bindir, "postgres"), "--version"], cwd="/", timeout=30)
        if res.returncode != 0:
            raise LabError(f"{bindir}/postgres does not run as OS user {user}: {res.stderr.strip()}")
        socket_dir = self._socket_dir_for()
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _i in range(24))
        port = self._pick_port(set(), socket_dir)
        return {
            "version": version,
            "major": major,
            "bindir": bindir,
            "client_bindir": client_bindir(bindir, major),
            "os_user": user,
            "superuser": SUPERUSER,
            "password": password,
            "socket_dir": socket_dir,
            "archive_dir": os.path.join(self.dir, "archive"),
            "nodes": {
                "primary": {"host": HOST, "port": port, "datadir": os.path.join(self.dir, "primary"),
                            "role": "primary"},
            },
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _check_pg_matches(self) -> None:
        if self.pg == "auto":
            return
        st = self.state
        if self.pg.isdigit():
            if int(self.pg) != st["major"]:
                raise LabError(f"the lab at {self.dir} runs PostgreSQL {st['version']} ({st['bindir']}), "
                               f"not {self.pg}: destroy it first or use another --dir")
            return
        want = find_bindir(self.pg)
        if os.path.realpath(want) != os.path.realpath(st["bindir"]):
            raise LabError(f"the lab at {self.dir} uses bindir {st['bindir']}, not {want}: "
                           "destroy it first or use another --dir")

    def _prepare_dirs(self) -> None:
        st = self.state
        user = st["os_user"]
        if osuser.is_root():
            os.chmod(self.dir, 0o755)
        for d in (st["archive_dir"], st["socket_dir"]):
            if not os.path.isdir(d):
                os.makedirs(d, 0o755, exist_ok=True)
            if osuser.is_root() and d.startswith("/tmp/pglab-") and os.stat(d).st_uid not in (0, osuser.ids(user)[0]):
                raise LabError(f"socket dir {d} exists and belongs to someone else; remove it")
            osuser.chown(d, user)
            os.chmod(d, 0o755)
        osuser.check_access(user, st["archive_dir"], "the WAL archive folder", "w")
        osuser.check_access(user, st["socket_dir"], "the socket folder", "w")

    def _write_confs(self, datadir: str, name: str, port: int, standby: bool) -> None:
        st = self.state
        a = st["archive_dir"]
        archive = f'test ! -f "{a}/%f" && cp "%p" "{a}/.%f.tmp" && mv "{a}/.%f.tmp" "{a}/%f"'
        common = f"""# pglab: settings shared by all nodes (written by tools/pglab)
listen_addresses = '{HOST}'
unix_socket_directories = {_conf_str(st['socket_dir'])}
password_encryption = 'scram-sha-256'
max_connections = 100
shared_buffers = 128MB
wal_level = replica
archive_mode = on
archive_command = {_conf_str(archive)}
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 64MB
min_wal_size = 32MB
max_wal_size = 256MB
hot_standby = on
hot_standby_feedback = on
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql.log'
log_rotation_age = 0
log_rotation_size = 0
log_line_prefix = '%m [%p] %q%u@%d '
log_checkpoints = on
"""
        node = f"""# pglab: settings of this node (written by tools/pglab)
port = {port}
cluster_name = 'pglab-{name}'
"""
        if standby:
            # test -f first: a missing segment is normal and need not spam the log
            restore = f'test -f "{a}/%f" && cp "{a}/%f" "%p"'
            node += f"restore_command = {_conf_str(restore)}\n"
        hba = f"""# pglab: scram-sha-256 for everything, loopback only (written by tools/pglab)
# TYPE  DATABASE     USER  ADDRESS         METHOD
local   all          all                   scram-sha-256
host    all          all   {HOST}/32    scram-sha-256
local   replication  all                   scram-sha-256
host    replication  all   {HOST}/32    scram-sha-256
"""
        files = {"lab.conf": common, "lab_node.conf": node, "pg_hba.conf": hba}
        for fname, text in files.items():
            path = os.path.join(datadir, fname)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o600)
            osuser.chown(path, st["os_user"])
        conf = os.path.join(datadir, "postgresql.conf")
        with open(conf, encoding="utf-8") as f:
            text = f.read()
        if "include 'lab.conf'" not in text:
            with open(conf, "a", encoding="utf-8") as f:
                f.write("\n# pglab\ninclude 'lab.conf'\ninclude 'lab_node.conf'\n")

    def _init_primary(self) -> None:
        st = self.state
        n = st["nodes"]["primary"]
        if os.path.isfile(os.path.join(n["datadir"], "PG_VERSION")):
            return
        user = st["os_user"]
        tmp = n["datadir"] + ".initdb"
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o700)
        osuser.chown(tmp, user)
        pwfile = os.path.join(self.dir, ".pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(st["password"] + "\n")
        osuser.chown(pwfile, user)
        self._say(f"initdb primary (PostgreSQL {st['version']}, {st['bindir']})")
        try:
            res = self._run_server_tool(
                [self._bin("initdb"), "-D", tmp, "-U", st["superuser"], f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--data-checksums", "--encoding=UTF8", "--locale=C"],
                timeout=300)
        finally:
            os.unlink(pwfile)
        if res.returncode != 0:
            raise LabError(f"initdb failed (exit {res.returncode}):\n{(res.stdout + res.stderr).strip()}")
        self._write_confs(tmp, "primary", n["port"], standby=False)
        os.mkdir(os.path.join(tmp, "log"), 0o700)
        osuser.chown(os.path.join(tmp, "log"), user)
        os.rename(tmp, n["datadir"])

    def _create_standby(self) -> None:
        st = self.state
        user = st["os_user"]
        if "standby" not in st["nodes"]:
            port = self._pick_port({st["nodes"]["primary"]["port"]}, st["socket_dir"])
            st["nodes"]["standby"] = {"host": HOST, "port": port,
                                      "datadir": os.path.join(self.dir, "standby"),
                                      "role": "standby", "slot": SLOT, "upstream": "primary"}
            self._save_state()
        n = st["nodes"]["standby"]
        if os.path.isfile(os.path.join(n["datadir"], "PG_VERSION")):
            return
        p = st["nodes"]["primary"]
        self.psql("primary", f"SELECT 1 FROM pg_create_physical_replication_slot('{SLOT}') "
                             f"WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '{SLOT}')")
        tmp = n["datadir"] + ".basebackup"
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o700)
        osuser.chown(tmp, user)
        self._say(f"pg_basebackup -R for the standby (slot {SLOT})")
        res = self._run_server_tool(
            [self._client("pg_basebackup"), "-D", tmp, "-h", p["host"], "-p", str(p["port"]),
             "-U", st["superuser"], "-w", "-X", "stream", "-c", "fast", "-R", "-S", SLOT],
            env=osuser.clean_env({"PGPASSWORD": st["password"], "PGAPPNAME": "standby"}),
            timeout=600)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LabError(f"pg_basebackup failed (exit {res.returncode}):\n{(res.stdout + res.stderr).strip()}")
        # the copied primary logs are not this node's
        logdir = os.path.join(tmp, "log")
        shutil.rmtree(logdir, ignore_errors=True)
        os.mkdir(logdir, 0o700)
        osuser.chown(logdir, user)
        self._write_confs(tmp, "standby", n["port"], standby=True)
        auto = os.path.join(tmp, "postgresql.auto.conf")
        with open(auto, encoding="utf-8") as f:
            text = f.read()
        if "primary_conninfo" not in text or "password=" not in text:
            # pg_basebackup -R did not keep the password: spell the conninfo out
            with open(auto, "a", encoding="utf-8") as f:
                f.write("primary_conninfo = " + _conf_str(
                    f"host={p['host']} port={p['port']} user={st['superuser']} "
                    f"password={st['password']} application_name=pglab-standby") + "\n")
        if f"primary_slot_name = '{SLOT}'" not in text:
            with open(auto, "a", encoding="utf-8") as f:
                f.write(f"primary_slot_name = '{SLOT}'\n")
        if not os.path.exists(os.path.join(tmp, "standby.signal")):
            open(os.path.join(tmp, "standby.signal"), "w").close()
            osuser.chown(os.path.join(tmp, "standby.signal"), user)
        os.rename(tmp, n["datadir"])

    # ------------------------------------------------------------------ public API
    def start(self, tenants: int = 3, scale: float = 1, standby: bool = True, seed: bool = True,
              db: str = seedmod.DEFAULT_DB) -> dict:
        """Create (first time) and start the lab; idempotent. Returns the state dict.

        An existing lab is started as it is (its standby too, even with
        standby=False); a missing standby is added when standby=True; the sample
        database is seeded once (the first start with seed=True).
        """
        t0 = time.monotonic()
        self._check_dir(create=False)
        if not self.exists():
            # resolve binaries and the server user before creating anything
            self._bindir = find_bindir(self.pg)
            self._check_dir(create=True, user=osuser.ensure_user())
        with self._locked():
            if self.exists():
                self._check_pg_matches()
                if not os.path.isdir(self.state["bindir"]):
                    raise LabError(f"the lab's bindir {self.state['bindir']} is gone; "
                                   f"reinstall it or `tools/lab destroy --dir {self.dir}`")
            else:
                self._state = self._new_state()
                self._save_state()
            version, major = server_version(self.state["bindir"])
            if major != self.state["major"]:
                raise LabError(f"bindir {self.state['bindir']} now holds PostgreSQL {version}, "
                               f"the lab was made with {self.state['version']}; destroy it")
            if version != self.state["version"]:
                self.state["version"] = version
                self._save_state()
            self._prepare_dirs()
            for name, n in self.state["nodes"].items():  # all ports first: no half-started lab
                if os.path.isfile(os.path.join(n["datadir"], "PG_VERSION")) and not self.is_running(name) \
                        and not port_free(n["port"]):
                    raise LabError(
                        f"port {n['port']} ({name} of the lab at {self.dir}) is in use by another process; "
                        f"stop that process, or `tools/lab destroy --dir {self.dir}` and start again "
                        "to pick new ports")
            self._init_primary()
            self._start_node("primary")
            if standby or "standby" in self.state["nodes"]:
                self._create_standby()
                self._start_node("standby")
            if seed and db not in self.state.get("seeded", {}):
                self.seed(db=db, tenants=tenants, scale=scale)
            elif "standby" in self.state["nodes"]:
                self.wait_replay(timeout=60)
            self._say(f"lab ready in {time.monotonic() - t0:.1f}s")
            return self.state

    def stop(self) -> bool:
        """Fast shutdown, standby first. False if there is no lab."""
        if not self.exists():
            return False
        with self._locked():
            for name in ("standby", "primary"):
                if name in self.state["nodes"]:
                    self._stop_node(name)
        return True

    def destroy(self) -> bool:
        """Stop the servers and remove DIR (and an outside socket dir). False if nothing was there."""
        if not os.path.lexists(self.dir):
            return False
        if not os.path.isdir(self.dir):
            raise LabError(f"bad DIR {self.dir}: not a directory; refusing to remove it")
        if not self.exists():
            extra = [e for e in os.listdir(self.dir) if e not in (LOCK_FILE, STATE_FILE + ".tmp")]
            if extra:
                raise LabError(f"{self.dir} holds no {STATE_FILE}; refusing to remove a folder that is not a lab")
            shutil.rmtree(self.dir)
            return True
        with self._locked():
            st = self.state
            for name in ("standby", "primary"):
                if name not in st["nodes"]:
                    continue
                try:
                    self._stop_node(name)
                except LabError as exc:
                    self._say(f"{exc}; trying immediate shutdown")
                    try:
                        self._stop_node(name, mode="immediate")
                    except LabError:
                        self._kill_postmaster(st["nodes"][name]["datadir"])
            sock = st.get("socket_dir", "")
            if sock.startswith("/tmp/pglab-") and os.path.isdir(sock):
                shutil.rmtree(sock, ignore_errors=True)
            shutil.rmtree(self.dir)
        self._state = None
        return True

    def _kill_postmaster(self, datadir: str) -> None:
        try:
            with open(os.path.join(datadir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGQUIT)
        for _tick in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)

    def seed(self, db: str = seedmod.DEFAULT_DB, tenants: int = 3, scale: float = 1) -> dict:
        """Drop and re-create ``db`` on the primary with the sample schema and data.

        Waits until a running standby has replayed it. Returns row counts.
        """
        tenants = int(tenants)
        scale = float(scale)
        if tenants < 1:
            raise LabError("--tenants must be >= 1")
        if scale <= 0:
            raise LabError("--scale must be > 0")
        if db in ("postgres", "template0", "template1"):
            raise LabError(f"refusing to seed into {db!r}")
        with self._locked():
            t0 = time.monotonic()
            self._say(f"seeding database {db} ({tenants} tenants, scale {scale:g})")
            self.psql("primary", seedmod.roles_sql(self.state["password"]))
            for stmt in seedmod.recreate_db_sql(db):
                self.psql("primary", stmt)
            self.psql("primary", seedmod.seed_db_sql(db, tenants, scale), db=db, single_transaction=True)
            self.psql("primary", "ANALYZE", db=db)
            counts = self.row_counts(db)
            self.state.setdefault("seeded", {})[db] = {"tenants": tenants, "scale": scale}
            self._save_state()
            if "standby" in self.state["nodes"] and self.is_running("standby"):
                self.wait_replay(timeout=60)
            self._say(f"seeded {db} in {time.monotonic() - t0:.1f}s: "
                      + ", ".join(f"{k}={v}" for k, v in counts.items()))
            return counts

    def row_counts(self, db: str = seedmod.DEFAULT_DB, node: str = "primary") -> dict:
        tables = ["tenants", *seedmod.PER_TENANT]
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
        out = self.psql(node, sql, db=db)
        return {k: int(v) for k, v in (line.split("|") for line in out.splitlines())}

    def wait_replay(self, timeout: float = 30) -> str:
        """Wait until the standby's replay LSN >= the primary's current WAL LSN; return it."""
        if "standby" not in self.state["nodes"]:
            raise LabError(f"the lab at {self.dir} has no standby")
        target = self.psql("primary", "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        got, err = "", None
        while True:
            try:
                got = self.psql("standby", "SELECT pg_last_wal_replay_lsn()", timeout=15)
                err = None
            except LabError as exc:
                got, err = "", exc
            if got and parse_lsn(got) >= parse_lsn(target):
                return got
            if time.monotonic() > deadline:
                n = self.node("standby")
                raise LabError(
                    f"standby did not replay up to {target} within {timeout}s "
                    f"(replayed: {got or 'nothing'}{'; ' + str(err) if err else ''})\n"
                    f"{self._server_log_tail(n['datadir'])}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """Live status: per node running/in_recovery, replication, archive size."""
        st = self.state
        out: dict = {"dir": self.dir, "version": st["version"], "nodes": {}}
        for name, n in st["nodes"].items():
            info = {"port": n["port"], "running": self.is_running(name)}
            if info["running"]:
                with contextlib.suppress(LabError):
                    info["in_recovery"] = self.psql(name, "SELECT pg_is_in_recovery()") == "t"
            out["nodes"][name] = info
        prim = out["nodes"].get("primary", {})
        if prim.get("running") and "standby" in st["nodes"]:
            with contextlib.suppress(LabError):
                rows = self.psql("primary",
                                 "SELECT application_name, state, "
                                 "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint "
                                 "FROM pg_stat_replication")
                out["replication"] = [dict(zip(("application_name", "state", "replay_lag_bytes"),
                                               r.split("|"))) for r in rows.splitlines()]
        with contextlib.suppress(OSError):
            out["archived_files"] = len([f for f in os.listdir(st["archive_dir"]) if not f.startswith(".")])
        return out

    def status_text(self) -> str:
        st = self.state
        live = self.status()
        lines = [
            f"pglab lab at {self.dir}",
            f"  PostgreSQL {st['version']}  bindir {st['bindir']}"
            + (f" (client programs: {st['client_bindir']})"
               if st.get("client_bindir", st["bindir"]) != st["bindir"] else ""),
            f"  servers run as OS user {st['os_user']}; superuser {st['superuser']} "
            f"(password in {self.state_path}, or `tools/lab env`)",
            f"  socket dir {st['socket_dir']}; WAL archive {st['archive_dir']} "
            f"({live.get('archived_files', '?')} files)",
        ]
        for name, n in st["nodes"].items():
            info = live["nodes"][name]
            if info["running"]:
                state = "running"
                if "in_recovery" in info:
                    state += ", in recovery" if info["in_recovery"] else ", read-write"
            else:
                state = "stopped"
            lines.append(f"  {name:<8} {n['host']}:{n['port']:<6} {state:<24} {n['datadir']}")
        for r in live.get("replication", []):
            lines.append(f"  replication: {r['application_name']} {r['state']}, "
                         f"replay lag {r['replay_lag_bytes']} bytes")
        if "standby" in st["nodes"] and live["nodes"].get("primary", {}).get("running") \
                and live["nodes"].get("standby", {}).get("running") and not live.get("replication"):
            lines.append("  replication: standby not connected yet")
        for db, s in st.get("seeded", {}).items():
            lines.append(f"  seeded database {db}: {s['tenants']} tenants, scale {s['scale']:g}")
        return "\n".join(lines)
