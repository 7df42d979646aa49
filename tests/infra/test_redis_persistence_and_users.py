"""The self-hosted Redis's durability (AOF on encrypted EFS), bounded memory, non-root user and ACL
users in the template (issues 13 and 14.1), and the Redis context checks (Fargate sizes, TLS)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contracts import redis_acl
from stacks.config import FARGATE_TASK_MEMORY_MIB, AppConfig, ConfigError, ContextReader
from stacks.redis import self_hosted
from stacks.redis.self_hosted import NAMESPACE, maxmemory_mib
from tests.infra.conftest import EXISTING_SECRET_ARN, EXTERNAL_CONTEXT, EXTERNAL_HOST
from tests.infra.synth import Synth, cdk_json_context, synth

IMAGE_DIR = Path(self_hosted.__file__).resolve().parent / "image"


def of_type(s: Synth, resource_type: str) -> dict[str, dict]:
    return s.template.find_resources(resource_type)


def redis_task(s: Synth) -> dict:
    (task,) = [
        t["Properties"]
        for t in of_type(s, "AWS::ECS::TaskDefinition").values()
        if [c["Name"] for c in t["Properties"]["ContainerDefinitions"]] == ["redis"]
    ]
    return task


def redis_service(s: Synth) -> dict:
    (service,) = [
        svc["Properties"]
        for svc in of_type(s, "AWS::ECS::Service").values()
        if "ServiceRegistries" in svc["Properties"]
    ]
    return service


def ref(logical_id: str) -> dict:
    return {"Ref": logical_id}


def the_one(s: Synth, resource_type: str) -> tuple[str, dict]:
    ((logical_id, resource),) = of_type(s, resource_type).items()
    return logical_id, resource


# --- durability: AOF on EFS ---------------------------------------------------------------------------


def test_aof_lives_on_an_encrypted_efs_file_system_deleted_with_the_stack(default_synth):
    fs_id, fs = the_one(default_synth, "AWS::EFS::FileSystem")
    assert fs["Properties"]["Encrypted"] is True
    assert fs["DeletionPolicy"] == fs["UpdateReplacePolicy"] == "Delete"
    assert fs["Properties"]["ThroughputMode"] == "elastic"
    # no backup policy resource keeps a copy after destroy
    assert "BackupPolicy" not in fs["Properties"] or fs["Properties"]["BackupPolicy"]["Status"] == "DISABLED"
    # AND the task mounts it at the start script's data dir, through the access point, with TLS and IAM
    task = redis_task(default_synth)
    (volume,) = task["Volumes"]
    access_point_id, _ = the_one(default_synth, "AWS::EFS::AccessPoint")
    assert volume["EFSVolumeConfiguration"] == {
        "FilesystemId": ref(fs_id),
        "TransitEncryption": "ENABLED",
        "AuthorizationConfig": {"AccessPointId": ref(access_point_id), "IAM": "ENABLED"},
    }
    (container,) = task["ContainerDefinitions"]
    assert container["MountPoints"] == [
        {"ContainerPath": "/data", "SourceVolume": volume["Name"], "ReadOnly": False}
    ]
    script = (IMAGE_DIR / "start-redis.sh").read_text()
    assert 'DATA_DIR="${REDIS_DATA_DIR:-/data}"' in script


def test_the_start_script_turns_on_the_aof_fsynced_before_replies_and_noeviction():
    # (the same script runs in tests/emulators/test_redis_durability.py, kill -9 included)
    script = (IMAGE_DIR / "start-redis.sh").read_text()
    for setting in (
        "--appendonly yes",
        "--appendfsync always",
        '--save ""',
        "--maxmemory-policy noeviction",
    ):
        assert setting in script
    assert "requirepass" not in script  # users come from the ACL file only


def test_access_point_makes_every_file_the_redis_users(default_synth):
    _, access_point = the_one(default_synth, "AWS::EFS::AccessPoint")
    assert access_point["Properties"]["PosixUser"] == {"Uid": "999", "Gid": "999"}
    assert access_point["Properties"]["RootDirectory"] == {
        "Path": "/redis",
        "CreationInfo": {"OwnerUid": "999", "OwnerGid": "999", "Permissions": "750"},
    }


def test_mount_targets_sit_in_the_isolated_subnets_the_redis_task_uses(default_synth):
    service_subnets = redis_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    mount_targets = of_type(default_synth, "AWS::EFS::MountTarget").values()
    subnets = [m["Properties"]["SubnetId"] for m in mount_targets]
    assert sorted(map(json.dumps, subnets)) == sorted(map(json.dumps, service_subnets))
    assert all("isolated" in s["Ref"] for s in subnets)


def test_only_the_redis_task_reaches_nfs(default_synth):
    redis_group = redis_service(default_synth)["NetworkConfiguration"]["AwsvpcConfiguration"][
        "SecurityGroups"
    ]
    nfs = [
        r["Properties"]
        for r in of_type(default_synth, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] <= 2049 <= r["Properties"]["ToPort"]
    ]
    assert [r["SourceSecurityGroupId"] for r in nfs] == redis_group
    # and the file system's own group has no inline (e.g. CIDR) rule
    (mount_group,) = {
        json.dumps(m["Properties"]["SecurityGroups"])
        for m in of_type(default_synth, "AWS::EFS::MountTarget").values()
    }
    group_id = json.loads(mount_group)[0]["Fn::GetAtt"][0]
    assert "SecurityGroupIngress" not in default_synth.template_json["Resources"][group_id]["Properties"]


def test_the_task_role_mounts_and_writes_through_the_access_point_only(default_synth):
    fs_id, fs = the_one(default_synth, "AWS::EFS::FileSystem")
    access_point_id, _ = the_one(default_synth, "AWS::EFS::AccessPoint")
    statements = [
        statement
        for policy in of_type(default_synth, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "elasticfilesystem" in json.dumps(statement["Action"])
    ]
    (statement,) = statements
    assert statement["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["Resource"] == {"Fn::GetAtt": [fs_id, "Arn"]}
    condition = statement["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
    assert ref(access_point_id) in condition["Fn::Join"][1]
    # AND the file system refuses plaintext NFS and root access to everyone
    policy = fs["Properties"]["FileSystemPolicy"]["Statement"]
    assert {
        "Action": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": "*",
    } in policy
    assert {
        "Action": "elasticfilesystem:ClientRootAccess",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": "*",
    } in policy


def test_redis_runs_as_its_own_non_root_user(default_synth):
    (container,) = redis_task(default_synth)["ContainerDefinitions"]
    assert container["User"] == "999:999"
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    assert re.search(r"^USER redis:redis$", dockerfile, re.M)


def test_a_restarted_task_has_time_to_load_its_aof_before_health_checks_count(default_synth):
    (container,) = redis_task(default_synth)["ContainerDefinitions"]
    health = container["HealthCheck"]
    assert health["StartPeriod"] >= 120
    # the health check logs in as the read-only user, its password from the environment (an ECS secret)
    assert health["Command"][1].startswith('REDISCLI_AUTH="$REDIS_PASSWORD_GRAFANA" redis-cli')
    assert "--user grafana ping" in health["Command"][1]


# --- bounded memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("memory", sorted({m for sizes in FARGATE_TASK_MEMORY_MIB.values() for m in sizes}))
def test_maxmemory_leaves_headroom_for_the_aof_rewrite_and_the_process(memory):
    limit = maxmemory_mib(memory)
    # 60 % of what is left after 200 MiB: fragmentation (~1.3x) plus a rewrite's copy-on-write fit
    assert limit == int((memory - 200) * 0.6)
    assert 0 < limit * 1.65 + 200 <= memory


def test_maxmemory_and_fsync_policy_follow_the_context(default_synth):
    (container,) = redis_task(default_synth)["ContainerDefinitions"]
    assert container["Command"] == ["--maxmemory", f"{maxmemory_mib(1024)}mb", "--appendfsync", "always"]
    big = synth({"redisCpu": "1024", "redisMemoryMb": "4096", "redisAppendFsync": "everysec"})
    task = redis_task(big)
    assert (task["Cpu"], task["Memory"]) == ("1024", "4096")
    assert task["ContainerDefinitions"][0]["Command"] == [
        "--maxmemory",
        "2337mb",
        "--appendfsync",
        "everysec",
    ]


def read(overrides: dict) -> AppConfig:
    context = {**cdk_json_context(), **overrides}
    return AppConfig.from_context(ContextReader(context.get))


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        ("256", "512"),
        ("256", "2048"),
        ("512", "4096"),
        ("2048", "16384"),
        ("4096", "30720"),
        ("8192", "61440"),
        ("16384", "122880"),
    ],
)
def test_every_fargate_size_is_accepted(cpu, memory):
    config = read({"redisCpu": cpu, "redisMemoryMb": memory})
    assert (config.redis.cpu, config.redis.memory_mb) == (int(cpu), int(memory))


@pytest.mark.parametrize(
    ("cpu", "memory", "message"),
    [
        ("256", "3072", "for redisCpu=256 one of 512, 1024, 2048 (MiB)"),
        ("512", "512", "for redisCpu=512 one of 1024, 2048, 3072, 4096 (MiB)"),
        ("1024", "1024", "for redisCpu=1024 one of 2048 to 8192 in steps of 1024 (MiB)"),
        ("8192", "18432", "for redisCpu=8192 one of 16384 to 61440 in steps of 4096 (MiB)"),
        ("16384", "40000", "for redisCpu=16384 one of 32768 to 122880 in steps of 8192 (MiB)"),
    ],
)
def test_a_size_fargate_does_not_offer_fails_at_synth(cpu, memory, message):
    with pytest.raises(ConfigError) as error:
        read({"redisCpu": cpu, "redisMemoryMb": memory})
    assert error.value.key == "redisMemoryMb"
    assert message in str(error.value)


def test_only_the_two_safe_fsync_policies_are_accepted():
    assert read({}).redis.append_fsync == "always"
    with pytest.raises(ConfigError, match="'redisAppendFsync' = 'no' is not valid: one of always, everysec"):
        read({"redisAppendFsync": "no"})


def test_a_cpu_fargate_does_not_offer_fails_at_synth():
    with pytest.raises(ConfigError, match="'redisCpu' = 768 is not valid: one of 256, 512, 1024"):
        read({"redisCpu": "768"})


# --- ACL users -----------------------------------------------------------------------------------------


def secret_templates(s: Synth) -> dict[str, tuple[str, dict]]:
    """Connection secrets by user name: (logical id, template)."""
    out = {}
    for logical_id, secret in of_type(s, "AWS::SecretsManager::Secret").items():
        text = secret["Properties"].get("GenerateSecretString", {}).get("SecretStringTemplate", "")
        if '"host"' in text:
            template = json.loads(text)
            out[template["username"]] = (logical_id, template)
    return out


def test_one_generated_secret_per_acl_user_in_the_documented_shape(default_synth):
    secrets = secret_templates(default_synth)
    assert set(secrets) == {u.name for u in redis_acl.USERS}
    for name, (logical_id, template) in secrets.items():
        assert template == {"host": f"redis.{NAMESPACE}", "port": 6379, "tls": False, "username": name}
        generate = default_synth.template_json["Resources"][logical_id]["Properties"]["GenerateSecretString"]
        assert generate["GenerateStringKey"] == "password"
        assert "SecretString" not in default_synth.template_json["Resources"][logical_id]["Properties"]
    # the scorer reads its own secret, never Grafana's
    scorer_env = [
        f["Properties"]["Environment"]["Variables"]
        for f in of_type(default_synth, "AWS::Lambda::Function").values()
        if f["Properties"].get("PackageType") == "Image"
    ]
    assert scorer_env[0]["REDIS_SECRET_ARN"] == ref(secrets["scorer"][0])


def test_the_task_creates_the_contract_users_from_ecs_secrets(default_synth):
    secrets = secret_templates(default_synth)
    (container,) = redis_task(default_synth)["ContainerDefinitions"]
    # the rules travel as plain environment (they are public: contracts/redis_acl.py) ...
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert environment == redis_acl.start_script_environment()
    assert "+flushall" not in json.dumps(environment)
    assert "+@all" not in environment[redis_acl.rules_env("grafana")]
    # ... each password only as an ECS secret from its own user's secret
    assert {s["Name"]: s["ValueFrom"] for s in container["Secrets"]} == {
        redis_acl.password_env(name): {"Fn::Join": ["", [ref(logical_id), ":password::"]]}
        for name, (logical_id, _) in secrets.items()
    }


def test_grafanas_secret_is_exposed_for_the_grafana_data_source(default_synth, external_synth):
    for s in (default_synth, external_synth):
        connection = s.stack.redis
        assert connection.grafana_secret is not None
        grafana_id, _ = secret_templates(s)["grafana"]
        resolved = s.stack.resolve(connection.grafana_secret.secret_arn)
        assert resolved == ref(grafana_id)


# --- external Redis -------------------------------------------------------------------------------------


def test_external_mode_creates_both_users_secrets_with_placeholders(external_synth):
    secrets = secret_templates(external_synth)
    assert {name: template for name, (_, template) in secrets.items()} == {
        "scorer": {"host": EXTERNAL_HOST, "port": 12345, "tls": True, "username": "scorer"},
        "grafana": {"host": EXTERNAL_HOST, "port": 12345, "tls": True, "username": "grafana"},
    }


def test_external_redis_without_tls_is_refused_unless_explicitly_allowed():
    # WHEN redisTls=false is given alone
    with pytest.raises(ConfigError) as error:
        read({**EXTERNAL_CONTEXT, "redisTls": "false"})
    # THEN the message names the opt-out
    assert error.value.key == "redisTls"
    assert "redisAllowPlaintext=true" in str(error.value)
    # AND with the documented opt-out it is accepted (and self-hosted Redis, inside the VPC, needs none)
    config = read({**EXTERNAL_CONTEXT, "redisTls": "false", "redisAllowPlaintext": "true"})
    assert (config.redis.tls, config.redis.allow_plaintext) == (False, True)
    assert read({"redisTls": "false"}).redis.self_hosted


def test_existing_secrets_can_be_given_for_both_users():
    grafana_arn = EXISTING_SECRET_ARN.replace("redis-cloud", "redis-grafana")
    config = read(
        {**EXTERNAL_CONTEXT, "redisSecretArn": EXISTING_SECRET_ARN, "redisGrafanaSecretArn": grafana_arn}
    )
    assert (config.redis.secret_arn, config.redis.grafana_secret_arn) == (EXISTING_SECRET_ARN, grafana_arn)
    with pytest.raises(ConfigError, match="redisGrafanaSecretArn"):
        read({**EXTERNAL_CONTEXT, "redisGrafanaSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x"})
