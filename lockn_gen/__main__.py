import sys

from lockn_gen.cli import main

sys.exit(main())
