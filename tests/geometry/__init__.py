"""Tests for geofleetd.geometry."""
