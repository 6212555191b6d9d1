"""Open a local HTML file in headless Debian chromium on a closed network and return its DOM and console messages.

Chromium is started with the flags a machine without network needs (no sandbox as root, no GPU, no first-run,
background networking, component updates, sync, crash reports or DNS) and its own profile folder, with logging on
stderr: every message of the page's console (errors, Content-Security-Policy violations, uncaught exceptions)
appears there as an ``INFO:CONSOLE`` line, which `render` returns."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile

CONSOLE = re.compile(r':INFO:CONSOLE(?:\(\d+\))?:?\d*\]\s*(.*)$')


def chromium():
    """The chromium program, or None."""
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return None


def flags(profile):
    flags_ = ['--headless', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--disable-default-apps', '--disable-extensions', '--disable-breakpad', '--disable-crash-reporter',
              '--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication',
              '--host-resolver-rules=MAP * ~NOTFOUND', '--metrics-recording-only', '--mute-audio',
              '--user-data-dir=%s' % profile, '--enable-logging=stderr', '--v=0']
    if os.geteuid() == 0:
        flags_.append('--no-sandbox')  # chromium refuses to run as root with its sandbox
    return flags_


def render(path, timeout=90):
    """(dom, console) of the page at path: the DOM after load (--dump-dom) and the console messages."""
    program = chromium()
    if program is None:
        raise RuntimeError('chromium is not installed (Debian: apt-get install chromium; make postgres installs it)')
    profile = tempfile.mkdtemp(prefix='chromium-profile-')
    argv = [program] + flags(profile) + ['--dump-dom', 'file://' + os.path.abspath(path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=profile,
                            env=dict(os.environ, HOME=profile), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError('chromium failed (%s): %s' % (proc.returncode, err.decode('utf-8', 'replace')[-3000:]))
    console = [m.group(1) for m in (CONSOLE.search(line) for line in err.decode('utf-8', 'replace').splitlines())
               if m]
    return out.decode('utf-8', 'replace'), console
