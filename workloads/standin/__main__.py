import sys

from standin.server import main

sys.exit(main())
