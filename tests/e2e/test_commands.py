"""Core commands through redis-py and raw RESP against a real server."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.conftest import ServerProc

P = '{"type":"Point","coordinates":[-115,33]}'


def test_set_get_formats(r: redis.Redis) -> None:
    assert r.execute_command("SET", "fleet", "t1", "POINT", "33", "-115") == "OK"
    assert r.execute_command("GET", "fleet", "t1") == P
    assert r.execute_command("GET", "fleet", "t1", "POINT") == ["33", "-115"]
    assert r.execute_command("GET", "fleet", "t1", "BOUNDS") == [
        ["33", "-115"],
        ["33", "-115"],
    ]
    assert r.execute_command("GET", "fleet", "t1", "HASH", "7") == "9my5xp7"
    assert r.execute_command("GET", "fleet", "nope") is None
    assert r.execute_command("GET", "nokey", "t1") is None


def test_fields_merge_and_zero_removes(r: redis.Redis) -> None:
    r.execute_command("SET", "f", "a", "FIELD", "speed", "5", "POINT", "1", "2")
    r.execute_command("SET", "f", "a", "FIELD", "heading", "90", "POINT", "1", "2")
    assert r.execute_command("GET", "f", "a", "WITHFIELDS")[1] == [
        "heading",
        "90",
        "speed",
        "5",
    ]
    assert r.execute_command("FSET", "f", "a", "speed", "0", "name", "bob") == 2
    assert r.execute_command("GET", "f", "a", "WITHFIELDS")[1] == [
        "heading",
        "90",
        "name",
        "bob",
    ]
    assert r.execute_command("FGET", "f", "a", "heading") == "90"
    assert r.execute_command("FEXISTS", "f", "a", "speed") == 0
    assert r.execute_command("FEXISTS", "f", "a", "name") == 1
    with pytest.raises(redis.ResponseError, match="id not found"):
        r.execute_command("FSET", "f", "zz", "a", "1")
    assert r.execute_command("FSET", "f", "zz", "XX", "a", "1") == 0


def test_nx_xx(r: redis.Redis) -> None:
    assert r.execute_command("SET", "k", "a", "XX", "POINT", "1", "2") is None
    assert r.execute_command("SET", "k", "a", "NX", "POINT", "1", "2") == "OK"
    assert r.execute_command("SET", "k", "a", "NX", "POINT", "3", "4") is None
    assert r.execute_command("GET", "k", "a", "POINT") == ["1", "2"]


def test_expiry_vanishes_on_time_without_reads(r: redis.Redis) -> None:
    r.execute_command("SET", "tmp", "a", "EX", "0.3", "POINT", "1", "2")
    r.execute_command("SET", "keep", "b", "POINT", "1", "2")
    assert 0 <= r.execute_command("TTL", "tmp", "a") <= 1
    assert r.execute_command("TTL", "keep", "b") == -1
    time.sleep(0.7)
    # KEYS does not read objects: the sweep itself must have removed the key
    assert r.execute_command("KEYS", "*") == ["keep"]
    stats = dict(zip(*[iter(r.execute_command("SERVER"))] * 2, strict=True))
    assert int(stats["num_objects"]) == 1


def test_expire_persist(r: redis.Redis) -> None:
    r.execute_command("SET", "k", "a", "POINT", "1", "2")
    assert r.execute_command("EXPIRE", "k", "a", "100") == 1
    assert 98 <= r.execute_command("TTL", "k", "a") <= 100
    assert r.execute_command("PERSIST", "k", "a") == 1
    assert r.execute_command("TTL", "k", "a") == -1
    assert r.execute_command("EXPIRE", "k", "zz", "5") == 0


def test_del_pdel_drop_rename_keys(r: redis.Redis) -> None:
    for i in range(5):
        r.execute_command("SET", "fleet", f"truck{i}", "POINT", "1", i)
    r.execute_command("SET", "fleet", "car1", "POINT", "1", "1")
    assert r.execute_command("DEL", "fleet", "car1") == 1
    assert r.execute_command("DEL", "fleet", "car1") == 0
    assert r.execute_command("PDEL", "fleet", "truck[0-2]") == 3
    assert r.execute_command("SCAN", "fleet", "IDS") == [0, ["truck3", "truck4"]]
    assert r.execute_command("RENAME", "fleet", "f2") == "OK"
    assert r.execute_command("KEYS", "*") == ["f2"]
    r.execute_command("SET", "other", "x", "STRING", "v")
    assert r.execute_command("RENAMENX", "f2", "other") == 0
    assert r.execute_command("DROP", "f2") == 1
    assert r.execute_command("DROP", "f2") == 0
    assert r.execute_command("EXISTS", "other", "x") == 1
    assert r.execute_command("TYPE", "other") == "hash"
    assert r.execute_command("FLUSHDB") == "OK"
    assert r.execute_command("KEYS", "*") == []


def test_scan_paging_and_where(r: redis.Redis) -> None:
    for i in range(250):
        r.execute_command("SET", "s", f"id{i:03d}", "FIELD", "n", i, "POINT", "1", "1")
    first = r.execute_command("SCAN", "s", "IDS")
    assert first[0] == 100 and first[1][0] == "id000" and len(first[1]) == 100
    second = r.execute_command("SCAN", "s", "CURSOR", first[0], "IDS")
    assert second[0] == 200 and second[1][0] == "id100"
    third = r.execute_command("SCAN", "s", "CURSOR", second[0], "IDS")
    assert third[0] == 0 and len(third[1]) == 50
    assert r.execute_command("SCAN", "s", "WHERE", "n", "(10", "20", "COUNT") == 10
    assert r.execute_command("SCAN", "s", "WHERE", "n >= 240 || n < 2", "COUNT") == 12
    assert r.execute_command(
        "SCAN", "s", "WHEREIN", "n", "3", "1", "5", "999", "IDS"
    ) == [0, ["id001", "id005"]]
    assert r.execute_command("SCAN", "s", "DESC", "LIMIT", "2", "IDS") == [
        2,
        ["id249", "id248"],
    ]


def test_json_output_shapes(r: redis.Redis) -> None:
    assert json.loads(r.execute_command("OUTPUT", "json"))["ok"] is True
    r.execute_command("SET", "k", "a", "FIELD", "speed", "5", "POINT", "33", "-115")
    got = json.loads(r.execute_command("GET", "k", "a", "WITHFIELDS"))
    assert got["object"] == {"type": "Point", "coordinates": [-115, 33]}
    assert got["fields"] == {"speed": 5}
    assert "elapsed" in got
    err = json.loads(r.execute_command("GET", "k", "zz"))
    assert err["ok"] is False and err["err"] == "id not found"
    near = json.loads(r.execute_command("NEARBY", "k", "POINTS", "POINT", "33", "-115"))
    assert near["points"] == [
        {"id": "a", "point": {"lat": 33, "lon": -115}, "fields": [5]}
    ]
    assert near["count"] == 1 and near["cursor"] == 0


def test_pipelined_replies_in_order(server: ServerProc) -> None:
    raw = server.raw()
    cmds = []
    for i in range(2000):
        cmds.append(["SET", "p", f"v{i}", "POINT", str(i % 80), "1"])
        if i % 500 == 0:
            cmds.append(["SCAN", "p", "COUNT"])
    raw.send_raw(b"".join(_enc(c) for c in cmds))
    replies = [raw.read() for _ in cmds]
    counts = [rep for c, rep in zip(cmds, replies, strict=True) if c[0] == "SCAN"]
    assert counts == [1, 501, 1001, 1501]
    assert all(
        rep == "OK" for c, rep in zip(cmds, replies, strict=True) if c[0] == "SET"
    )


def _enc(args: list[str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def test_jset_jget_jdel(r: redis.Redis) -> None:
    assert r.execute_command("JSET", "u", "1", "name.first", "ann") == "OK"
    assert r.execute_command("JSET", "u", "1", "age", "33") == "OK"
    assert r.execute_command("JGET", "u", "1") == '{"name":{"first":"ann"},"age":33}'
    assert r.execute_command("JGET", "u", "1", "name.first") == "ann"
    assert r.execute_command("JDEL", "u", "1", "age") == 1
    assert r.execute_command("JGET", "u", "1") == '{"name":{"first":"ann"}}'


def test_stats_bounds_server_info_config(r: redis.Redis) -> None:
    r.execute_command("SET", "k", "a", "POINT", "33", "-115")
    r.execute_command("SET", "k", "b", "POINT", "34", "-112")
    assert r.execute_command("BOUNDS", "k") == [["-115", "33"], ["-112", "34"]]
    st = r.execute_command("STATS", "k", "none")
    assert st[1] is None and st[0][st[0].index("num_objects") + 1] == "2"
    assert "tile38_version" in r.execute_command("INFO")
    assert r.execute_command("CONFIG", "GET", "fsync") == ["fsync", "always"]
    assert r.execute_command("READONLY", "yes") == "OK"
    with pytest.raises(redis.exceptions.ReadOnlyError, match="read only"):
        r.execute_command("SET", "k", "c", "POINT", "1", "1")
    assert r.execute_command("READONLY", "no") == "OK"
    assert r.execute_command("HEALTHZ") == "OK"
    assert r.execute_command("GC") == "OK"


def test_sparse_keeps_one_object_per_tile(r: redis.Redis) -> None:
    for i in range(10):
        for j in range(10):
            r.execute_command("SET", "g", f"p{i}{j}", "POINT", i + 0.5, j + 0.5)
    assert r.execute_command("WITHIN", "g", "COUNT", "BOUNDS", 0, 0, 10, 10) == 100
    assert (
        r.execute_command("WITHIN", "g", "SPARSE", 1, "COUNT", "BOUNDS", 0, 0, 10, 10)
        == 4
    )
    assert (
        r.execute_command("WITHIN", "g", "SPARSE", 2, "COUNT", "BOUNDS", 0, 0, 10, 10)
        == 16
    )
    got = r.execute_command(
        "INTERSECTS", "g", "SPARSE", 1, "IDS", "BOUNDS", 0, 0, 10, 10
    )[1]
    tiles = {(int(oid[1]) // 5, int(oid[2]) // 5) for oid in got}
    assert len(got) == 4 and tiles == {(0, 0), (0, 1), (1, 0), (1, 1)}
    with pytest.raises(redis.ResponseError, match="invalid argument"):
        r.execute_command("WITHIN", "g", "SPARSE", 0, "IDS", "BOUNDS", 0, 0, 1, 1)
