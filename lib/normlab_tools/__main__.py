import sys

from normlab_tools.cli import main

sys.exit(main())
