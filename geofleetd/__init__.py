"""geofleetd: a fleet-tracking and geofencing server speaking Tile38's language."""

__version__ = "0.1.0"
