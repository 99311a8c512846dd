#!/usr/bin/env python3
"""The original implementation's entry point: `./main.py [global options] train|resume|evaluate [options]`.

A thin wrapper around `qrnn.cli.main`: the same program as the `qrnn` command (`qrnn train`, `qrnn resume`, ...).
"""

import sys

from qrnn.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="main.py"))
