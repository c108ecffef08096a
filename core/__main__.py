import sys

from hoist.core.cli import main

sys.exit(main())
