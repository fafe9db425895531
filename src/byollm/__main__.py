"""`python -m byollm ...` (and `torchrun -m byollm ...`) run the same CLI as `byollm ...`."""

import sys

from byollm.cli import main

sys.exit(main())
