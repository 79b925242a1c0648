"""The config file contract: discovery, interpolation, unknown keys, secrets."""

import os

from conftest import write_config


def test_without_any_config_the_builtin_local_broker_is_used(wfbus):
    doc = wfbus("brokers", "-o", "json").json()
    assert doc["config"] is None
    (local,) = doc["brokers"]
    data = os.path.join(
        os.environ["XDG_DATA_HOME"], "wfbus", "local.db"
    )  # no .wfbus/ upward: the user's data
    assert {k: local[k] for k in ("name", "type", "target", "default")} == {
        "name": "local",
        "type": "local",
        "target": data,
        "default": True,
    }  # no <name> placeholder
    assert (
        local["capabilities"]["ordering"] == "per-queue"
        and local["capabilities"]["atomic_transfer"] is True
    )


def test_unknown_key_is_a_config_error_naming_its_path(wfbus, tmp_path):
    write_config(tmp_path / "wfbus.yaml", {"order": {"type": "local", "pth": "x.db"}})
    result = wfbus("depth")
    assert result.code == 4
    assert "brokers.order.pth: unknown key (did you mean path?)" in result.err


def test_unknown_broker_type_suggests_the_closest(wfbus, tmp_path):
    write_config(tmp_path / "wfbus.yaml", {"order": {"type": "locl"}})
    result = wfbus("depth")
    assert (
        result.code == 4
        and "unknown broker type 'locl'" in result.err
        and "did you mean 'local'" in result.err
    )


def test_bad_yaml_names_the_line(wfbus, tmp_path):
    (tmp_path / "wfbus.yaml").write_text("brokers:\n  a: {type: local\n")
    result = wfbus("depth")
    assert result.code == 4 and "wfbus.yaml:3" in result.err and "invalid YAML" in result.err


def test_duplicate_yaml_keys_and_python_tags_are_refused(wfbus, tmp_path):
    (tmp_path / "a.yaml").write_text("brokers:\n  a: {type: local}\n  a: {type: local}\n")
    (tmp_path / "b.yaml").write_text("brokers: !!python/object/apply:os.system ['true']\n")
    assert "duplicate key 'a'" in wfbus("--config", "a.yaml", "depth").err
    result = wfbus("--config", "b.yaml", "depth")
    assert result.code == 4 and "invalid YAML" in result.err


def test_alias_bombs_are_refused(wfbus, tmp_path):
    lines = ["a0: &a0 [x, x]"] + [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 60)
    ]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nbrokers: {l: {type: local}}\n")
    result = wfbus("--config", "bomb.yaml", "depth")
    assert result.code == 4 and "alias" in result.err


def test_variables_are_interpolated_with_defaults(wfbus, tmp_path, monkeypatch):
    monkeypatch.setenv("WFBUS_TEST_QUEUE", "orders")
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "o": {
                "type": "local",
                "queue": "${WFBUS_TEST_QUEUE}",
                "dead_letter_queue": "${WFBUS_UNSET_X:-parked}",
            }
        },
    )
    rows = wfbus("depth", "-o", "json").json()["queues"]
    assert [r["queue"] for r in rows] == ["orders", "parked"]


def test_an_unset_variable_without_default_is_a_config_error(wfbus, tmp_path):
    write_config(tmp_path / "wfbus.yaml", {"o": {"type": "local", "queue": "${WFBUS_UNSET_Y}"}})
    result = wfbus("depth")
    assert result.code == 4
    assert "brokers.o.queue: environment variable WFBUS_UNSET_Y is not set" in result.err


def test_discovery_order_flag_then_env_then_cwd(wfbus, tmp_path, monkeypatch):
    write_config(tmp_path / "wfbus.yaml", {"cwd": {"type": "local"}})
    write_config(tmp_path / "env.yaml", {"env": {"type": "local"}})
    write_config(tmp_path / "flag.yaml", {"flag": {"type": "local"}})
    assert wfbus("brokers", "-o", "json").json()["brokers"][0]["name"] == "cwd"
    monkeypatch.setenv("WFBUS_CONFIG", str(tmp_path / "env.yaml"))
    assert wfbus("brokers", "-o", "json").json()["brokers"][0]["name"] == "env"
    assert (
        wfbus("--config", "flag.yaml", "brokers", "-o", "json").json()["brokers"][0]["name"]
        == "flag"
    )


def test_xdg_config_is_the_last_resort(wfbus, tmp_path):
    (tmp_path / "xdg" / "wfbus").mkdir(parents=True)
    write_config(tmp_path / "xdg" / "wfbus" / "config.yaml", {"xdg": {"type": "local"}})
    assert wfbus("brokers", "-o", "json").json()["brokers"][0]["name"] == "xdg"


def test_missing_explicit_config_is_exit_4(wfbus):
    result = wfbus("--config", "nope.yaml", "depth")
    assert result.code == 4 and "config file not found" in result.err


def test_unknown_broker_name_is_exit_2_with_suggestion(wfbus, tmp_path):
    write_config(
        tmp_path / "wfbus.yaml", {"order": {"type": "local"}, "billing": {"type": "local"}}, "order"
    )
    result = wfbus("emit", "--broker", "ordr", "--topic", "t", "--urn", "u")
    assert (
        result.code == 2
        and "unknown broker 'ordr'" in result.err
        and "did you mean 'order'" in result.err
    )


def test_default_broker_must_exist(wfbus, tmp_path):
    write_config(tmp_path / "wfbus.yaml", {"order": {"type": "local"}}, "nope")
    assert wfbus("depth").code == 4


def test_relative_local_path_is_relative_to_the_config_file(wfbus, tmp_path):
    (tmp_path / "conf").mkdir()
    write_config(tmp_path / "conf" / "w.yaml", {"l": {"type": "local", "path": "data/l.db"}})
    assert wfbus("--config", "conf/w.yaml", "emit", "--topic", "t", "--urn", "u").code == 0
    assert os.path.exists(tmp_path / "conf" / "data" / "l.db")


def test_the_example_config_documents_valid_settings_for_every_type(wfbus, monkeypatch):
    from conftest import REPO

    monkeypatch.setenv("ORDER_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
    monkeypatch.setenv("RABBIT_PASSWORD", "s3cret-pass")
    result = wfbus("--config", str(REPO / "config.example.yaml"), "brokers", "-o", "json")
    assert result.code == 0, result.err
    assert {b["type"] for b in result.json()["brokers"]} == {"local", "sqs", "kafka", "rabbitmq"}
    assert "s3cret-pass" not in result.out


def test_an_unset_variable_blocks_only_the_broker_that_uses_it_and_all_are_listed_at_once(
    wfbus, tmp_path
):
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "local": {"type": "local"},
            "order": {
                "type": "sqs",
                "queue_url": "${WFBUS_UNSET_URL}",
                "region": "${WFBUS_UNSET_REGION}",
            },
        },
        default="local",
    )
    assert wfbus("emit", "-b", "local", "--topic", "a", "--urn", "b", "--dry-run").code == 0
    result = wfbus("emit", "-b", "order", "--topic", "a", "--urn", "b")
    assert result.code == 4
    assert "brokers.order.queue_url: environment variable WFBUS_UNSET_URL is not set" in result.err
    assert "brokers.order.region: environment variable WFBUS_UNSET_REGION is not set" in result.err
    assert "export WFBUS_UNSET_REGION=... WFBUS_UNSET_URL=..." in result.err


def test_a_password_from_the_environment_is_not_a_secret_in_clear(wfbus, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv(
        "WFBUS_TEST_RABBIT_PASSWORD", "guest"
    )  # equal to the user name written in the file
    write_config(
        tmp_path / "wfbus.yaml",
        {
            "r": {
                "type": "rabbitmq",
                "url": "amqp://guest:${WFBUS_TEST_RABBIT_PASSWORD}@127.0.0.1:9/%2F",
            }
        },
    )
    os.chmod(tmp_path / "wfbus.yaml", 0o644)
    assert "holds secrets in clear" not in wfbus("brokers").err
