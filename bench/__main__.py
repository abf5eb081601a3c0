"""``python -m bench``: run the benchmark and print its table (see bench/README.md)."""

import sys

from bench.run import main

sys.exit(main())
