"""The fixture everything else relies on really has the three modules loaded."""


def test_redis_stack_has_json_timeseries_and_search(redis_client):
    # GIVEN a fresh server WHEN each module's command runs THEN each answers for real
    redis_client.json().set("probe:json", "$", {"a": 1})
    redis_client.ts().add("probe:ts", 1000, 2.5)
    redis_client.execute_command(
        "FT.CREATE", "idx:probe", "ON", "JSON", "PREFIX", "1", "probe:", "SCHEMA", "$.a", "AS", "a", "NUMERIC"
    )

    assert redis_client.json().get("probe:json", "$.a") == [1]
    assert tuple(redis_client.ts().get("probe:ts")) == (1000, 2.5)
    assert "idx:probe" in redis_client.execute_command("FT._LIST")
