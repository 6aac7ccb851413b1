import sys

from recapture.cli import main

sys.exit(main())
