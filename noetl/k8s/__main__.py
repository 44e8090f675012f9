"""``python -m noetl.k8s [options]``: the worker (``noetl worker``), for images without the script."""

import sys

from noetl.k8s._worker_cli import main

sys.exit(main())
