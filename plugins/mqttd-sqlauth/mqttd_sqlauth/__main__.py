"""
C{python -m mqttd_sqlauth}: the C{mqttd-sqlauth} command.
"""

from __future__ import annotations

from mqttd_sqlauth.admin import main

main()
