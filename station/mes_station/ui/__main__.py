"""``python -m mes_station.ui``: run the station's desktop window."""

import sys

from mes_station.ui.app import main

sys.exit(main())
