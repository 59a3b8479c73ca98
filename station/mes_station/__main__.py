"""``python -m mes_station`` runs the station CLI."""

from mes_station.cli import main

main()
