"""Configuration parsing from COMFYQ_* variables."""
from __future__ import annotations

import pytest

import celeryconfig
from comfyq.config.settings import Config, ConfigError, capability_queue, parse_capabilities, parse_instances


def test_instances_parse_in_order() -> None:
    found = parse_instances("gpu0=http://127.0.0.1:8188/, gpu1=http://h:8189")
    assert list(found) == ["gpu0", "gpu1"]
    assert found["gpu0"].url == "http://127.0.0.1:8188"
    assert found["gpu1"].queue == "comfy.gpu1"


def test_capabilities_add_queues() -> None:
    instances = parse_capabilities("gpu1=sdxl+flux", parse_instances("gpu0=http://a:1,gpu1=http://b:2"))
    assert instances["gpu0"].queues() == ["comfy.gpu0"]
    assert instances["gpu1"].queues() == ["comfy.gpu1", "comfy.need.flux", "comfy.need.sdxl",
                                          "comfy.need.flux+sdxl"]
    assert capability_queue(["sdxl", "flux"]) == "comfy.need.flux+sdxl"
    with pytest.raises(ConfigError, match="configured instance"):
        parse_capabilities("gpu9=sdxl", instances)
    with pytest.raises(ConfigError, match="lowercase"):
        parse_capabilities("gpu0=SDXL", instances)


@pytest.mark.parametrize("spec, fragment", [
    ("gpu0", "expected name="), ("GPU0=http://x", "expected name="),
    ("gpu0=ftp://x", "must start with http"), ("a=http://x,a=http://y", "twice")])
def test_bad_instances_say_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_instances(spec)


def test_defaults_live_under_the_data_dir(tmp_path) -> None:
    cfg = Config({"COMFYQ_DATA_DIR": str(tmp_path)})
    assert cfg.SQLALCHEMY_DATABASE_URI == f"sqlite:///{tmp_path}/comfyq.db"
    assert cfg.OUTPUT_DIR == f"{tmp_path}/outputs"
    assert cfg.INSTANCES == {}


def test_time_limits_must_make_sense() -> None:
    with pytest.raises(ConfigError, match="at most COMFYQ_MAX_TIME_LIMIT"):
        Config({"COMFYQ_SOFT_TIME_LIMIT": "100", "COMFYQ_MAX_TIME_LIMIT": "50"})
    with pytest.raises(ConfigError, match="grace"):
        Config({"COMFYQ_TIME_LIMIT_GRACE": "0"})
    with pytest.raises(ConfigError, match="not a number"):
        Config({"COMFYQ_SOFT_TIME_LIMIT": "soon"})


def test_celery_settings_follow_the_config(tmp_path) -> None:
    cfg = Config({"COMFYQ_DATA_DIR": str(tmp_path), "COMFYQ_INSTANCES": "gpu0=http://a:1,gpu1=http://b:2",
                  "COMFYQ_CAPABILITIES": "gpu1=sdxl", "COMFYQ_SOFT_TIME_LIMIT": "800",
                  "COMFYQ_TIME_LIMIT_GRACE": "100", "COMFYQ_MAX_TIME_LIMIT": "2000"}).as_dict()
    conf = celeryconfig.settings(cfg)
    assert [q.name for q in conf["task_queues"]] == ["comfy", "comfy.gpu0", "comfy.gpu1", "comfy.need.sdxl",
                                                      "control", "webhooks"]
    assert conf["task_time_limit"] == 900
    # short: live workers renew what they hold (comfyq.lease), so only a dead worker's jobs come back,
    # and within visibility timeout + restore interval
    options = conf["broker_transport_options"]
    assert options["visibility_timeout"] + options["unacked_restore_interval"] <= 15
    assert conf["beat_schedule"]["reconcile"]["options"]["queue"] == "control"
    assert conf["task_routes"]["comfyq.reconcile"] == {"queue": "control"}
    assert conf["task_routes"]["comfyq.deliver_webhook"] == {"queue": "webhooks"}
    assert conf["beat_schedule"]["resend_webhooks"]["options"]["queue"] == "control"
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["worker_concurrency"] == 1


@pytest.mark.parametrize("env, fragment", [
    ({"COMFYQ_INTERRUPT_GRACE": "60"}, "COMFYQ_INTERRUPT_GRACE must be positive and below"),
    ({"COMFYQ_VISIBILITY_TIMEOUT": "1"}, "COMFYQ_VISIBILITY_TIMEOUT must be at least 3 s"),
    ({"COMFYQ_MAX_ATTEMPTS": "0"}, "COMFYQ_MAX_ATTEMPTS must be at least 1"),
])
def test_reliability_settings_are_checked(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Config(env)


def test_fair_share_defaults_follow_the_instances() -> None:
    config = Config({"COMFYQ_INSTANCES": "a=http://h:1,b=http://h:2,c=http://h:3"})
    assert (config.MAX_RUNNING_PER_USER, config.MAX_ADMITTED, config.FREE_ROLES) == (3, 6, {"admin", "service"})
    assert Config({"COMFYQ_MAX_ADMITTED": "2"}).MAX_ADMITTED == 2


def test_role_limits_parse_and_refuse_nonsense() -> None:
    config = Config({"COMFYQ_ROLE_LIMITS": "student:running=1,waiting=20,rate=30; user:running=2"})
    assert config.ROLE_LIMITS == {"student": {"max_running": 1, "max_waiting": 20, "rate_per_minute": 30},
                                  "user": {"max_running": 2}, "service": {"max_waiting": 0, "rate_per_minute": 0}}
    assert Config({"COMFYQ_ROLE_LIMITS": "service:rate=100"}).ROLE_LIMITS["service"] == {
        "max_waiting": 0, "rate_per_minute": 100}
    for spec, fragment in [("pupil:running=1", "with a role among"), ("student:speed=3", "'speed=3' is not"),
                           ("student:running=-1", "'running=-1' is not"), ("student:running=0", "at least 1"),
                           ("student", "expected role:")]:
        with pytest.raises(ConfigError, match=fragment):
            Config({"COMFYQ_ROLE_LIMITS": spec})
    with pytest.raises(ConfigError, match="COMFYQ_MAX_RUNNING_PER_USER must be at least 1"):
        Config({"COMFYQ_MAX_RUNNING_PER_USER": "0"})


def test_storage_must_be_local_or_a_named_bucket() -> None:
    assert Config({}).STORAGE == "local"
    s3 = Config({"COMFYQ_STORAGE": "s3", "COMFYQ_S3_BUCKET": "outs", "COMFYQ_S3_ENDPOINT_URL": "http://minio:9000"})
    assert (s3.S3_BUCKET, s3.S3_ENDPOINT_URL, s3.S3_PREFIX, s3.S3_URL_EXPIRES) == ("outs", "http://minio:9000", "", 3600)
    for env in ({"COMFYQ_STORAGE": "s3"}, {"COMFYQ_STORAGE": "ftp"}):
        with pytest.raises(ConfigError, match="COMFYQ_STORAGE must be local or s3"):
            Config(env)


def test_webhook_settings_have_defaults_and_are_checked() -> None:
    config = Config({})
    assert (config.WEBHOOK_TIMEOUT, config.WEBHOOK_BACKOFF, config.WEBHOOK_BACKOFF_MAX, config.WEBHOOK_RETRY_FOR,
            config.WEBHOOK_CONCURRENCY) == (10, 5, 3600, 86400, 8)
    assert not config.WEBHOOK_ALLOW.hosts and not config.WEBHOOK_ALLOW.networks
    allow = Config({"COMFYQ_WEBHOOK_ALLOW": "127.0.0.1,10.0.0.0/8,hooks.internal"}).WEBHOOK_ALLOW
    assert allow.hosts == {"hooks.internal"} and [str(n) for n in allow.networks] == ["127.0.0.1/32", "10.0.0.0/8"]
    with pytest.raises(ConfigError, match="COMFYQ_WEBHOOK_ALLOW entry '10.1.0.0/8'"):
        Config({"COMFYQ_WEBHOOK_ALLOW": "10.1.0.0/8"})
    for env in ({"COMFYQ_WEBHOOK_TIMEOUT": "0"}, {"COMFYQ_WEBHOOK_BACKOFF": "10", "COMFYQ_WEBHOOK_BACKOFF_MAX": "5"},
                {"COMFYQ_WEBHOOK_RETRY_FOR": "-1"}, {"COMFYQ_WEBHOOK_CONCURRENCY": "0"}):
        with pytest.raises(ConfigError, match="COMFYQ_WEBHOOK_TIMEOUT must be positive"):
            Config(env)
    with pytest.raises(ConfigError, match="not a number"):
        Config({"COMFYQ_WEBHOOK_BACKOFF": "soon"})
