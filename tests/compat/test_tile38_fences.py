"""Live geofences (FENCE on NEARBY/WITHIN, DETECT, ROAM, NODWELL), checked against
the events Tile38 1.37.0 pushed. A fence connection answers OK, then receives one
JSON event per detection; events are compared as subsets (they carry a time).
"""

from __future__ import annotations

import time

from tests.compat.helpers import assert_silent, assert_subset, read_event
from tests.conftest import RawClient, ServerProc


def open_fence(server: ServerProc, *args: str) -> RawClient:
    sub = server.raw()
    assert sub.call(*args) == "OK"
    return sub


def point(lon: float, lat: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_nearby_fence_reports_enter_inside_exit_outside(
    server: ServerProc, c: RawClient
) -> None:
    sub = open_fence(server, "NEARBY", "mykey", "FENCE", "POINT", "33", "-115", "5000")
    try:
        assert c.call("SET", "mykey", "myid1", "POINT", "33", "-115") == "OK"
        base = {"command": "set", "key": "mykey", "id": "myid1"}
        at_start = point(-115, 33)
        assert_subset(read_event(sub), {**base, "detect": "enter", "object": at_start})
        assert_subset(read_event(sub), {**base, "detect": "inside", "object": at_start})
        assert c.call("SET", "mykey", "myid1", "POINT", "33.01", "-115") == "OK"
        assert_subset(
            read_event(sub),
            {"command": "set", "detect": "inside", "id": "myid1"}
            | {"object": point(-115, 33.01)},
        )
        assert c.call("SET", "mykey", "myid1", "POINT", "34", "-115") == "OK"
        gone = point(-115, 34)
        assert_subset(read_event(sub), {**base, "detect": "exit", "object": gone})
        assert_subset(read_event(sub), {**base, "detect": "outside", "object": gone})
        assert c.call("SET", "mykey", "myid1", "POINT", "35", "-115") == "OK"
        assert_subset(read_event(sub), {"command": "set", "detect": "outside"})
        assert_silent(sub, 0.3)
    finally:
        sub.close()


def test_detect_cross_passes_through_without_stopping(
    server: ServerProc, c: RawClient
) -> None:
    sub = open_fence(
        server, "NEARBY", "fleet", "FENCE", "DETECT", "enter,exit,cross",
        "POINT", "10.000", "10.000", "10000",
    )  # fmt: skip
    try:
        c.call("SET", "fleet", "vehicle_1", "POINT", "10.0", "10.0")
        assert_subset(read_event(sub), {"detect": "enter", "id": "vehicle_1"})
        c.call("SET", "fleet", "vehicle_1", "POINT", "0.0", "0.0")
        assert_subset(read_event(sub), {"detect": "exit", "id": "vehicle_1"})
        # from (0,0) to (20,20): the path crosses the circle around (10,10)
        c.call("SET", "fleet", "vehicle_1", "POINT", "20.0", "20.0")
        assert_subset(
            read_event(sub),
            {"detect": "cross", "id": "vehicle_1", "object": point(20, 20)},
        )
        assert_silent(sub, 0.3)
    finally:
        sub.close()


def test_fence_applies_match_and_where(server: ServerProc, c: RawClient) -> None:
    sub = open_fence(
        server, "WITHIN", "fleet", "FENCE", "MATCH", "truck*",
        "WHERE", "speed", "10", "+inf", "IDS", "BOUNDS", "0", "0", "10", "10",
    )  # fmt: skip
    try:
        c.call("SET", "fleet", "car1", "FIELD", "speed", "50", "POINT", "5", "5")
        c.call("SET", "fleet", "truck1", "FIELD", "speed", "5", "POINT", "5", "5")
        c.call("SET", "fleet", "truck2", "FIELD", "speed", "50", "POINT", "5", "5")
        assert_subset(read_event(sub), {"detect": "enter", "id": "truck2"})
        assert_subset(read_event(sub), {"detect": "inside", "id": "truck2"})
        assert_silent(sub, 0.3)
    finally:
        sub.close()


def test_expiry_and_pdel_are_reported_as_del(server: ServerProc, c: RawClient) -> None:
    sub = open_fence(server, "WITHIN", "fleet", "FENCE", "BOUNDS", "0", "0", "10", "10")
    try:
        c.call("SET", "fleet", "a", "EX", "0.5", "POINT", "5", "5")
        assert_subset(read_event(sub), {"command": "set", "detect": "enter", "id": "a"})
        assert_subset(
            read_event(sub), {"command": "set", "detect": "inside", "id": "a"}
        )
        assert_subset(
            read_event(sub, timeout=3), {"command": "del", "key": "fleet", "id": "a"}
        )
        c.call("SET", "fleet", "b", "POINT", "5", "5")
        assert_subset(read_event(sub), {"detect": "enter", "id": "b"})
        assert_subset(read_event(sub), {"detect": "inside", "id": "b"})
        assert c.call("PDEL", "fleet", "*") == 1
        assert_subset(read_event(sub), {"command": "del", "key": "fleet", "id": "b"})
        assert_silent(sub, 0.3)
    finally:
        sub.close()


# Two cars on one street (same latitude), driving towards and past each other.
STREET = "33.414750027566235"
CAR1_LONS = [
    "-111.93669319152832",
    "-111.93051338195801",
    "-111.92416191101074",
    "-111.91789627075195",
    "-111.9111156463623",
    "-111.90510749816895",
    "-111.89746856689453",
]
CAR2_LONS = [
    "-111.89746856689453",
    "-111.90519332885742",
    "-111.91154479980467",
    "-111.91781044006346",
    "-111.92416191101074",
    "-111.93059921264648",
    "-111.93660736083984",
]


def car_at(lon: str) -> dict[str, object]:
    return {"type": "Point", "coordinates": [float(lon), float(STREET)]}


def test_roam_reports_nearby_and_faraway_with_meters(
    server: ServerProc, c: RawClient
) -> None:
    sub = open_fence(server, "NEARBY", "cars", "FENCE", "ROAM", "cars", "*", "1000")
    try:
        for lon1, lon2 in zip(CAR1_LONS, CAR2_LONS, strict=True):
            assert c.call("SET", "cars", "car1", "POINT", STREET, lon1) == "OK"
            time.sleep(0.05)
            assert c.call("SET", "cars", "car2", "POINT", STREET, lon2) == "OK"
            time.sleep(0.05)
        head = {"command": "set", "detect": "roam", "key": "cars"}
        expected = [
            ("car1", CAR1_LONS[3], "nearby", "car2", CAR2_LONS[2], 589.512),
            ("car2", CAR2_LONS[3], "nearby", "car1", CAR1_LONS[3], 7.966),
            ("car1", CAR1_LONS[4], "nearby", "car2", CAR2_LONS[3], 621.377),
            ("car2", CAR2_LONS[4], "faraway", "car1", CAR1_LONS[4], 1210.89),
        ]
        for oid, lon, relation, other, other_lon, meters in expected:
            other_part = {
                "key": "cars",
                "id": other,
                "object": car_at(other_lon),
                "meters": meters,
            }
            assert_subset(
                read_event(sub),
                {**head, "id": oid, "object": car_at(lon), relation: other_part},
            )
        assert_silent(sub, 0.3)
    finally:
        sub.close()


def test_nodwell_reports_a_pair_once(server: ServerProc, c: RawClient) -> None:
    sub = open_fence(
        server, "NEARBY", "people", "MATCH", "p*", "FENCE", "NODWELL",
        "ROAM", "people", "p*", "100",
    )  # fmt: skip
    try:
        for oid, lat in (
            ("p1", "33"),
            ("p2", "33.0001"),
            ("p2", "33.0002"),
            ("p1", "33.0003"),
        ):
            assert c.call("SET", "people", oid, "POINT", lat, "-115") == "OK"
            time.sleep(0.05)
        assert_subset(
            read_event(sub),
            {
                "detect": "roam",
                "id": "p2",
                "nearby": {"key": "people", "id": "p1", "meters": 11.119},
            },
        )
        assert_silent(sub, 0.5)
    finally:
        sub.close()
