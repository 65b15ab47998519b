"""`python -m decision_transformer ...` is `dt ...` (e.g. `torchrun --nproc-per-node 2 -m decision_transformer train ...`)."""

import sys

from decision_transformer.cli import main

sys.exit(main())
