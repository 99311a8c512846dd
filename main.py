#!/usr/bin/env python3
"""The original implementation's entry point: `./main.py [global options] train|resume|evaluate [options]`.

A thin wrapper around `qrnn.training.commands.main`, the same code as `qrnn train`, `qrnn resume`, `qrnn evaluate`.
"""

import sys

from qrnn.training.commands import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="main.py"))
