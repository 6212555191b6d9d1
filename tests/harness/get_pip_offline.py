"""Stand-in for pip's get-pip.py, placed in ansible-test's cache: installs pip from the interpreter's own bundle
(ensurepip) instead of downloading a bootstrap script. Arguments ansible-test passes are ignored."""

import subprocess
import sys

if __name__ == '__main__':
    sys.exit(subprocess.call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip']))
