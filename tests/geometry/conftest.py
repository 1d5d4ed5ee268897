"""Real data for the geometry tests: NYC district features and AIS positions."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "geofleetd" / "data"


@pytest.fixture(scope="session")
def districts_doc() -> dict[str, Any]:
    """The shipped FeatureCollection of 71 community districts, as decoded JSON."""
    with open(DATA / "nyc_community_districts.geojson", encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


@pytest.fixture(scope="session")
def district_texts(districts_doc: dict[str, Any]) -> list[str]:
    """Each district feature as its own compact GeoJSON text."""
    return [
        json.dumps(feature, separators=(",", ":"))
        for feature in districts_doc["features"]
    ]


@pytest.fixture(scope="session")
def ais_positions() -> tuple[np.ndarray, np.ndarray]:
    """(lats, lons) of the 8,689 AIS fixes of 30 Jun 2020, first hour."""
    lats: list[float] = []
    lons: list[float] = []
    path = DATA / "nyharbor_ais_2020-06-30_first_hour.csv"
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lats.append(float(row["lat"]))
            lons.append(float(row["lon"]))
    return np.array(lats), np.array(lons)
