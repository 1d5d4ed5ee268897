"""WHERE filters over fields and GeoJSON properties, as Tile38 1.37.0 answered."""

from __future__ import annotations

from tests.compat.helpers import call_error
from tests.conftest import RawClient


def _three_trucks(c: RawClient) -> None:
    for n, speed in ((1, "10"), (2, "20"), (3, "30")):
        args = ("SET", "fleet", f"truck{n}", "FIELD", "speed", speed, "POINT", "33")
        assert c.call(*args, "-112") == "OK"


def scan_ids(c: RawClient, *where: str) -> object:
    return c.call("SCAN", "fleet", *where, "IDS")


def test_where_range_open_above(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "speed", "15", "+inf") == [0, ["truck2", "truck3"]]


def test_where_range_open_below(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "speed", "-inf", "20") == [0, ["truck1", "truck2"]]


def test_where_range_with_exclusive_bounds(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "speed", "(10", "(30") == [0, ["truck2"]]


def test_where_single_comparison_expressions(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "speed > 10") == [0, ["truck2", "truck3"]]
    assert scan_ids(c, "WHERE", "speed == 20") == [0, ["truck2"]]


def test_where_expressions_with_and_or(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "speed >= 20 && speed < 30") == [0, ["truck2"]]
    assert scan_ids(c, "WHERE", "speed < 15 || speed > 25") == [
        0,
        ["truck1", "truck3"],
    ]


def test_repeated_where_clauses_must_all_hold(c: RawClient) -> None:
    _three_trucks(c)
    both = ("WHERE", "speed", "15", "+inf", "WHERE", "speed", "-inf", "25")
    assert scan_ids(c, *both) == [0, ["truck2"]]


def test_where_on_a_missing_field_treats_it_as_zero(c: RawClient) -> None:
    _three_trucks(c)
    assert scan_ids(c, "WHERE", "nofield", "0", "0") == [
        0,
        ["truck1", "truck2", "truck3"],
    ]


def _feature(properties: str) -> str:
    return (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[-112,33]},'
        f'"properties":{properties}}}'
    )


def _trucks_with_properties(c: RawClient) -> None:
    assert c.call("SET", "fleet", "truck1", "OBJECT", _feature('{"speed":50}')) == "OK"
    assert (
        c.call("SET", "fleet", "truck2", "FIELD", "speed", "20", "POINT", "33", "-112")
        == "OK"
    )
    feature = _feature('{"name":"truck01"}')
    assert c.call("SET", "fleet", "truck3", "OBJECT", feature) == "OK"


def test_where_compares_feature_properties(c: RawClient) -> None:
    _trucks_with_properties(c)
    assert scan_ids(c, "WHERE", "properties.speed", ">", "49") == [0, ["truck1"]]
    assert scan_ids(c, "WHERE", "properties.speed", ">", "50") == [0, []]


def test_where_matches_a_property_against_a_regex(c: RawClient) -> None:
    _trucks_with_properties(c)
    assert scan_ids(c, "WHERE", "properties.name =~ 'truck.*'") == [0, ["truck3"]]


def test_where_field_names_are_case_sensitive(c: RawClient) -> None:
    # Tile38's recorded case stored this object at POINT -112 33; geofleetd refuses
    # latitude -112 on purpose (issue #2 validation), so the same fields sit at a
    # valid position here. The filters do not depend on the position.
    c.call(
        "SET", "fleet", "truck1", "FIELD", "speed", "50", "FIELD", "Speed", "51",
        "POINT", "33", "-112",
    )  # fmt: skip
    assert scan_ids(c, "WHERE", "speed == 50") == [0, ["truck1"]]
    assert scan_ids(c, "WHERE", "Speed == 50") == [0, []]
    assert scan_ids(c, "WHERE", "Speed", "51", "51") == [0, ["truck1"]]
    assert scan_ids(c, "WHERE", "speed", "51", "51") == [0, []]


def test_case_sensitivity_object_with_latitude_minus_112_is_refused(
    c: RawClient,
) -> None:
    # Deliberate difference from Tile38 1.37.0, which stored this point.
    err = call_error(
        c, "SET", "fleet", "truck1", "FIELD", "speed", "50", "FIELD", "Speed", "51",
        "POINT", "-112", "33",
    )  # fmt: skip
    assert err == "ERR invalid argument '-112'"
    assert scan_ids(c, "WHERE", "speed == 50") == [0, []]
