"""GeoJSON parsing: rejections, the real district polygons, canonical text."""

from __future__ import annotations

import json
from typing import Any

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import shape

from geofleetd.errors import GeofleetError
from geofleetd.geometry.geojson import (
    GeoShape,
    parse_geojson,
    parse_geojson_cached,
    point_json,
)

SQUARE = "[[0,0],[10,0],[10,10],[0,10],[0,0]]"
HOLE = "[[4,4],[6,4],[6,6],[4,6],[4,4]]"


def _poly(*rings: str) -> str:
    return '{"type":"Polygon","coordinates":[' + ",".join(rings) + "]}"


REJECTED = {
    "broken json": '{"type":"Point",',
    "not an object": "[1,2]",
    "a string": '"Point"',
    "empty text": "",
    "missing type": '{"coordinates":[1,2]}',
    "type not a string": '{"type":7,"coordinates":[1,2]}',
    "unknown type": '{"type":"Circle","coordinates":[1,2]}',
    "lower-case type": '{"type":"point","coordinates":[1,2]}',
    "missing coordinates": '{"type":"Point"}',
    "coordinates not an array": '{"type":"Point","coordinates":"1,2"}',
    "null coordinates": '{"type":"LineString","coordinates":null}',
    "empty point": '{"type":"Point","coordinates":[]}',
    "one number": '{"type":"Point","coordinates":[1]}',
    "string number": '{"type":"Point","coordinates":["1",2]}',
    "bool number": '{"type":"Point","coordinates":[true,2]}',
    "null number": '{"type":"Point","coordinates":[1,null]}',
    "nested too deep": '{"type":"Point","coordinates":[[1,2]]}',
    "NaN": '{"type":"Point","coordinates":[NaN,2]}',
    "Infinity": '{"type":"Point","coordinates":[1,Infinity]}',
    "-Infinity": '{"type":"Point","coordinates":[-Infinity,2]}',
    "overflow to inf": '{"type":"Point","coordinates":[1e400,2]}',
    "NaN in z": '{"type":"Point","coordinates":[1,2,NaN]}',
    "lon > 180": '{"type":"Point","coordinates":[180.0000001,2]}',
    "lon < -180": '{"type":"Point","coordinates":[-181,2]}',
    "lat > 90": '{"type":"Point","coordinates":[1,90.5]}',
    "lat < -90": '{"type":"Point","coordinates":[1,-91]}',
    "lat out in a line": '{"type":"LineString","coordinates":[[1,2],[3,95.5]]}',
    "lon out in a ring": _poly("[[0,0],[190.5,0],[10,10],[0,0]]"),
    "bool in a line": '{"type":"LineString","coordinates":[[1.5,2.5],[true,1.5]]}',
    "ragged line": '{"type":"LineString","coordinates":[[1.5,2.5],[1.5]]}',
    "empty multipoint": '{"type":"MultiPoint","coordinates":[]}',
    "empty linestring": '{"type":"LineString","coordinates":[]}',
    "one-position line": '{"type":"LineString","coordinates":[[1,2]]}',
    "empty multiline": '{"type":"MultiLineString","coordinates":[]}',
    "short line in multi": '{"type":"MultiLineString","coordinates":[[[1,2]]]}',
    "empty polygon": '{"type":"Polygon","coordinates":[]}',
    "empty ring": '{"type":"Polygon","coordinates":[[]]}',
    "unclosed ring": _poly("[[0,0],[10,0],[10,10],[0,10]]"),
    "unclosed hole": _poly(SQUARE, "[[4,4],[6,4],[6,6],[4,6],[4,5]]"),
    "three-position ring": _poly("[[0,0],[10,0],[0,0]]"),
    "bow tie": _poly("[[0,0],[10,10],[10,0],[0,10],[0,0]]"),
    "collapsed ring": _poly("[[0,0],[0,0],[0,0],[0,0]]"),
    "hole outside shell": _poly(SQUARE, "[[20,20],[21,20],[21,21],[20,21],[20,20]]"),
    "empty multipolygon": '{"type":"MultiPolygon","coordinates":[]}',
    "empty part": '{"type":"MultiPolygon","coordinates":[[]]}',
    "overlapping parts": '{"type":"MultiPolygon","coordinates":[['
    + SQUARE
    + "]],[[[5,5],[15,5],[15,15],[5,15],[5,5]]]]}",
    "bad ring in part": '{"type":"MultiPolygon","coordinates":[[[[0,0],[1,1]]]]}',
    "missing geometries": '{"type":"GeometryCollection"}',
    "empty geometries": '{"type":"GeometryCollection","geometries":[]}',
    "feature in geometries": '{"type":"GeometryCollection","geometries":['
    '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}]}',
    "bad member geometry": '{"type":"GeometryCollection","geometries":['
    '{"type":"Point","coordinates":[1,200]}]}',
    "feature without geometry": '{"type":"Feature","properties":{}}',
    "feature with null geometry": '{"type":"Feature","geometry":null}',
    "feature of feature": '{"type":"Feature","geometry":{"type":"Feature",'
    '"geometry":{"type":"Point","coordinates":[1,2]}}}',
    "properties not an object": '{"type":"Feature","properties":[1],'
    '"geometry":{"type":"Point","coordinates":[1,2]}}',
    "id not a string or number": '{"type":"Feature","id":{"a":1},'
    '"geometry":{"type":"Point","coordinates":[1,2]}}',
    "missing features": '{"type":"FeatureCollection"}',
    "empty features": '{"type":"FeatureCollection","features":[]}',
    "geometry in features": '{"type":"FeatureCollection","features":['
    '{"type":"Point","coordinates":[1,2]}]}',
    "antimeridian bbox": '{"type":"Polygon","bbox":[170,0,-170,10],"coordinates":['
    "[[170,0],[180,0],[180,10],[170,10],[170,0]]]}",
    "bad bbox": '{"type":"Point","bbox":[1,2,3],"coordinates":[1,2]}',
    "infinite property": '{"type":"Feature","properties":{"a":1e999},'
    '"geometry":{"type":"Point","coordinates":[1,2]}}',
    "deep nesting": "[" * 50_000 + "]" * 50_000,
    "deep collections": '{"type":"GeometryCollection","geometries":[' * 40
    + '{"type":"Point","coordinates":[1,2]}'
    + "]}" * 40,
}


@pytest.mark.parametrize("text", REJECTED.values(), ids=REJECTED.keys())
@pytest.mark.parametrize("with_text", [True, False])
def test_rejections(text: str, with_text: bool) -> None:
    with pytest.raises(GeofleetError) as info:
        parse_geojson(text, with_text=with_text)
    assert info.value.message.startswith("invalid geojson: ")
    assert info.value.code == "ERR"


def test_rejection_messages_name_the_reason() -> None:
    def message(text: str) -> str:
        with pytest.raises(GeofleetError) as info:
            parse_geojson(text)
        return info.value.message

    assert message(REJECTED["unknown type"]) == "invalid geojson: unknown type 'Circle'"
    assert "latitude 90.5" in message(REJECTED["lat > 90"])
    assert "longitude 180.0000001" in message(REJECTED["lon > 180"])
    assert "not closed" in message(REJECTED["unclosed ring"])
    assert "at least 4 positions" in message(REJECTED["three-position ring"])
    assert "Self-intersection" in message(REJECTED["bow tie"])
    assert "antimeridian" in message(REJECTED["antimeridian bbox"])
    assert "NaN" in message(REJECTED["NaN"])


ACCEPTED = {
    "point": (
        '{"type":"Point","coordinates":[-115,33]}',
        "Point",
        (-115, 33, -115, 33),
    ),
    "point with z": ('{"type":"Point","coordinates":[-130,38,10]}', "Point", None),
    "multipoint": (
        '{"type":"MultiPoint","coordinates":[[1,2],[3,4]]}',
        "MultiPoint",
        None,
    ),
    "linestring": (
        '{"type":"LineString","coordinates":[[-122.4408378,37.7341129],'
        "[-122.4408378,37.733]]}",
        "LineString",
        (-122.4408378, 37.733, -122.4408378, 37.7341129),
    ),
    "multilinestring": (
        '{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[2,2],[3,1]]]}',
        "MultiLineString",
        (0, 0, 3, 2),
    ),
    "polygon": (_poly(SQUARE), "Polygon", (0, 0, 10, 10)),
    "polygon with hole": (_poly(SQUARE, HOLE), "Polygon", (0, 0, 10, 10)),
    "edges at the limits": (
        _poly("[[-180,-90],[180,-90],[180,90],[-180,90],[-180,-90]]"),
        "Polygon",
        (-180, -90, 180, 90),
    ),
    "multipolygon": (
        '{"type":"MultiPolygon","coordinates":[[[[0,0],[2.5,0],[2.5,2.5],[0,2.5],'
        "[0,0]]],[[[19,19],[22,19],[22,22],[19,22],[19,19]]]]}",
        "MultiPolygon",
        (0, 0, 22, 22),
    ),
    "geometrycollection": (
        '{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":'
        '[1,2]},{"type":"LineString","coordinates":[[3,4],[5,6]]}]}',
        "GeometryCollection",
        (1, 2, 5, 6),
    ),
    "feature": (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},'
        '"properties":{"a":1}}',
        "Feature",
        (1, 2, 1, 2),
    ),
    "featurecollection": (
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":'
        '{"type":"Point","coordinates":[1,2]},"properties":{}},{"type":"Feature",'
        '"geometry":' + _poly(SQUARE) + ',"properties":null}]}',
        "FeatureCollection",
        (0, 0, 10, 10),
    ),
}


@pytest.mark.parametrize(
    ("text", "kind", "bbox"), ACCEPTED.values(), ids=ACCEPTED.keys()
)
def test_accepted_kinds(
    text: str, kind: str, bbox: tuple[float, float, float, float] | None
) -> None:
    parsed = parse_geojson(text)
    assert parsed.kind == kind
    assert parsed.text == text  # these inputs are already canonical
    assert parsed.geom.is_valid
    doc = json.loads(text)
    if kind == "Feature":
        assert parsed.geom.equals_exact(shape(doc["geometry"]), 0)
    elif kind != "FeatureCollection":
        assert parsed.geom.equals_exact(shape(doc), 0)
    if bbox is not None:
        assert parsed.bbox == bbox
    lat, lon = parsed.center
    assert lat == (parsed.bbox[1] + parsed.bbox[3]) / 2
    assert lon == (parsed.bbox[0] + parsed.bbox[2]) / 2


def test_polygon_center_is_bbox_center() -> None:
    parsed = parse_geojson(_poly(SQUARE))
    assert parsed.center == (5.0, 5.0)
    assert parsed.bbox == (0.0, 0.0, 10.0, 10.0)
    assert parsed.properties is None


def test_hole_is_kept() -> None:
    parsed = parse_geojson(_poly(SQUARE, HOLE))
    assert len(parsed.geom.interiors) == 1
    assert parsed.geom.area == 100 - 4


def test_z_is_echoed_but_not_in_the_geometry() -> None:
    parsed = parse_geojson('{"type":"Point","coordinates":[-130,38,10]}')
    assert parsed.text == '{"type":"Point","coordinates":[-130,38,10]}'
    assert not parsed.geom.has_z
    assert (parsed.geom.x, parsed.geom.y) == (-130, 38)
    assert parsed.center == (38, -130)


def test_canonical_text_formats_and_orders() -> None:
    text = (
        '{ "coordinates" : [ [ 1.50, 2.0 ], [ 0.0000001, -0.25e1 ] ],\n'
        '  "extra": {"b": 1.0, "a": [1e-7, 2E21, true, null, "\\u00e9"]},'
        ' "type": "LineString" }'
    )
    parsed = parse_geojson(text)
    assert parsed.text == (
        '{"type":"LineString","coordinates":[[1.5,2],[0.0000001,-2.5]],'
        '"extra":{"b":1,"a":[1e-7,2e+21,true,null,"é"]}}'
    )


def test_feature_text_order_and_properties() -> None:
    text = (
        '{"id":"cd-1","type":"Feature","properties":{"n":1},'
        '"geometry":{"type":"Point","coordinates":[1,2]}}'
    )
    parsed = parse_geojson(text)
    assert parsed.text == (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},'
        '"id":"cd-1","properties":{"n":1}}'
    )
    assert parsed.properties == {"n": 1}

    bare = parse_geojson(
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}'
    )
    assert bare.text.endswith(',"properties":{}}')
    assert bare.properties == {}

    null = parse_geojson(
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":null}'
    )
    assert null.text.endswith(',"properties":null}')
    assert null.properties == {}


def test_lone_surrogate_stays_escaped() -> None:
    parsed = parse_geojson('{"type":"Point","coordinates":[1,2],"n":"\\ud800"}')
    assert parsed.text.endswith(',"n":"\\ud800"}')
    parsed.text.encode("utf-8")


def test_without_text() -> None:
    full = parse_geojson(_poly(SQUARE, HOLE))
    bare = parse_geojson(_poly(SQUARE, HOLE), with_text=False)
    assert bare.text == ""
    assert bare.geom.equals_exact(full.geom, 0)
    assert (bare.bbox, bare.center, bare.kind) == (full.bbox, full.center, full.kind)


def test_cached_parse_returns_the_same_shape() -> None:
    text = _poly(SQUARE, HOLE)
    assert parse_geojson_cached(text) is parse_geojson_cached(text)
    assert parse_geojson_cached(text) == parse_geojson(text)


def test_point_json_like_tile38() -> None:
    assert point_json(33, -115) == '{"type":"Point","coordinates":[-115,33]}'
    assert point_json(33.01, -115) == '{"type":"Point","coordinates":[-115,33.01]}'
    assert point_json(38, -130, 10) == '{"type":"Point","coordinates":[-130,38,10]}'
    assert point_json(1e-7, 0.5) == '{"type":"Point","coordinates":[0.5,0.0000001]}'
    assert parse_geojson(point_json(33, -115)).center == (33, -115)


def test_every_district_parses_like_shapely(
    districts_doc: dict[str, Any], district_texts: list[str]
) -> None:
    assert len(district_texts) == 71
    for feature, text in zip(districts_doc["features"], district_texts, strict=True):
        parsed = parse_geojson(text)
        expected = shape(feature["geometry"])
        assert parsed.kind == "Feature"
        assert parsed.geom.geom_type == feature["geometry"]["type"]
        assert parsed.geom == expected
        assert shapely.equals_exact(parsed.geom, expected, tolerance=0)
        assert parsed.bbox == expected.bounds
        assert parsed.properties == feature["properties"]
        # Same document (dicts compare without order), canonical order on output.
        assert json.loads(parsed.text) == feature
        assert parsed.text.startswith('{"type":"Feature","geometry":{"type":"')
        assert parse_geojson(parsed.text).text == parsed.text


def test_whole_district_collection(district_texts: list[str]) -> None:
    text = '{"type":"FeatureCollection","features":[' + ",".join(district_texts) + "]}"
    parsed = parse_geojson(text, with_text=False)
    assert parsed.kind == "FeatureCollection"
    assert len(parsed.geom.geoms) == 71
    minlon, minlat, maxlon, maxlat = parsed.bbox
    assert -74.3 < minlon < maxlon < -73.6
    assert 40.4 < minlat < maxlat < 41


coordinate = st.floats(min_value=-180, max_value=180, allow_subnormal=False)
latitude = st.floats(min_value=-90, max_value=90, allow_subnormal=False)


@given(coordinate, latitude, st.one_of(st.none(), st.floats(-1e6, 1e6)))
def test_point_round_trip(lon: float, lat: float, z: float | None) -> None:
    position = [lon, lat] if z is None else [lon, lat, z]
    parsed = parse_geojson(json.dumps({"type": "Point", "coordinates": position}))
    assert json.loads(parsed.text)["coordinates"] == position
    assert parse_geojson(parsed.text).text == parsed.text
    assert parsed.text == point_json(lat, lon, z)
    assert (parsed.geom.x, parsed.geom.y) == (lon, lat)


@given(
    st.lists(st.tuples(coordinate, latitude), min_size=2, max_size=40),
)
def test_linestring_round_trip(positions: list[tuple[float, float]]) -> None:
    coords = [list(p) for p in positions]
    text = json.dumps({"type": "LineString", "coordinates": coords})
    parsed = parse_geojson(text)
    assert json.loads(parsed.text)["coordinates"] == coords
    assert parse_geojson(parsed.text) == parsed
    assert parsed.geom.equals_exact(shape(json.loads(text)), 0)


@given(st.floats(-170, 170), st.floats(-80, 80), st.floats(1e-3, 9), st.floats(1e-3, 9))
def test_box_polygon_round_trip(x: float, y: float, w: float, h: float) -> None:
    ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
    parsed = parse_geojson(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    assert json.loads(parsed.text)["coordinates"] == [ring]
    assert parsed.bbox == (x, y, x + w, y + h)
    assert parsed.center == ((y + (y + h)) / 2, (x + (x + w)) / 2)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(-200, 200)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
KIND_NAMES = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
    "Feature",
    "FeatureCollection",
    "Nope",
]
kinds = st.sampled_from(KIND_NAMES)


@given(kinds, json_values, json_values)
def test_arbitrary_documents_parse_or_raise_geofleet_error(
    kind: str, payload: Any, extra: Any
) -> None:
    doc = {
        "type": kind,
        "coordinates": payload,
        "geometry": payload,
        "geometries": payload,
        "features": payload,
        "x": extra,
    }
    try:
        parsed = parse_geojson(json.dumps(doc))
    except GeofleetError as exc:
        assert exc.message.startswith("invalid geojson: ")
    else:
        assert isinstance(parsed, GeoShape)
        assert parse_geojson(parsed.text).text == parsed.text
