import sys

from tinygrad_like.cli import main

sys.exit(main())
