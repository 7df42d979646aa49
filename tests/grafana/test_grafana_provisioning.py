"""The image's build inputs: provisioning files, Dockerfile, .dockerignore and docker-compose.yml."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from grafana import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    GRAFANA_DIR,
    IMAGE_PLUGINS_PATH,
    IMAGE_PROVISIONING_PATH,
    IMAGE_PROVISIONING_TLS_PATH,
    PROVISIONING_DIR,
    PROVISIONING_TLS_DIR,
)
from grafana.queries import dashboard_paths
from tests.grafana.provisioning_env import provisioning_files, referenced_variables

REPO_ROOT = GRAFANA_DIR.parent
DOCKERFILE = (GRAFANA_DIR / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def datasource(tree: Path) -> dict:
    (only,) = yaml.safe_load((tree / "datasources" / "redis.yaml").read_text())["datasources"]
    return only


@pytest.mark.parametrize("path", provisioning_files(), ids=lambda p: str(p.relative_to(GRAFANA_DIR)))
def test_provisioning_files_parse(path):
    document = yaml.safe_load(path.read_text())

    assert document["apiVersion"] == 1
    assert document.get("datasources") or document.get("providers")


@pytest.mark.parametrize("tree", [PROVISIONING_DIR, PROVISIONING_TLS_DIR], ids=["plain", "tls"])
def test_datasource_takes_address_and_credentials_from_the_environment(tree):
    source = datasource(tree)

    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == DATASOURCE_TYPE
    assert source["url"] == "${REDIS_HOST}:${REDIS_PORT}"
    assert source["secureJsonData"] == {"password": "${REDIS_PASSWORD}"}
    assert source["jsonData"]["user"] == "${REDIS_USERNAME}"
    assert source["jsonData"]["tlsSkipVerify"] is False


def test_the_two_trees_differ_only_in_the_tls_switch():
    plain, tls = datasource(PROVISIONING_DIR), datasource(PROVISIONING_TLS_DIR)

    assert plain["jsonData"].pop("tlsAuth") is False
    assert tls["jsonData"].pop("tlsAuth") is True
    assert plain == tls


def test_dashboards_provider_reads_the_folder_the_image_copies_the_dashboards_to():
    (provider,) = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "fraud-detection.yaml").read_text())[
        "providers"
    ]

    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert f"COPY dashboards/ {provider['options']['path']}/" in DOCKERFILE
    assert dashboard_paths(), "no dashboards to provision"


def test_compose_sets_every_variable_the_provisioning_references():
    # GIVEN the variables the provisioning files expand
    referenced = referenced_variables()
    # WHEN Grafana runs under docker compose
    grafana = COMPOSE["services"]["grafana"]

    # THEN compose sets each of them, and picks the provisioning tree the image has
    assert referenced == {"REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD"}
    assert referenced <= set(grafana["environment"])
    assert grafana["environment"]["GF_PATHS_PROVISIONING"] == IMAGE_PROVISIONING_PATH


def test_compose_has_no_default_passwords():
    for service in COMPOSE["services"].values():
        for name, value in service.get("environment", {}).items():
            if "PASSWORD" in name:
                # ${VAR:?message} fails when VAR is unset; ${VAR:-default} or a literal would be a default.
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{name} must come from the environment"


def test_compose_publishes_ports_on_localhost_only():
    for service in COMPOSE["services"].values():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:")


def test_compose_builds_the_deployed_images():
    assert COMPOSE["services"]["grafana"]["build"] == "./grafana"
    assert COMPOSE["services"]["redis"]["build"] == "./stacks/redis/image"


def test_dockerfile_pins_grafana_and_the_plugin_and_keeps_plugins_outside_var_lib():
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE, re.M).group(1)
    # grafana/grafana-oss gets no images from 12.4 on; grafana/grafana publishes the same OSS build.
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", base), base
    assert re.search(r"^ARG REDIS_DATASOURCE_VERSION=\d+\.\d+\.\d+$", DOCKERFILE, re.M)
    assert f"GF_PATHS_PLUGINS={IMAGE_PLUGINS_PATH}" in DOCKERFILE
    assert not IMAGE_PLUGINS_PATH.startswith("/var/lib/grafana")


# The first release of each line with the fixes for CVE-2025-4123, CVE-2025-6023 and CVE-2025-6197
# (Grafana's security blog posts of 2025-05-21 and 2025-07-17 and the 11.6.4 changelog). Lines older
# than 12.4 are out of support, so the pin must also be on a supported line.
FIRST_FIXED = {(11, 6): (11, 6, 4), (12, 0): (12, 0, 3)}
OLDEST_SUPPORTED_LINE = (12, 4)


def test_grafana_is_a_patched_release_on_a_supported_line():
    version = re.search(r"^FROM\s+grafana/grafana(?:-oss)?:(\d+)\.(\d+)\.(\d+)", DOCKERFILE, re.M)
    major, minor, patch = map(int, version.groups())

    assert (major, minor) >= OLDEST_SUPPORTED_LINE, "11.6.0 lacks CVE-2025-4123/6023/6197 fixes"
    assert (major, minor, patch) >= FIRST_FIXED.get((major, minor), (major, minor, 0))


def test_plugin_archive_is_downloaded_and_checked_against_a_pinned_sha256():
    # GIVEN the plugin's pinned checksum (64 hex digits) and the download command
    digest = re.search(r"^ARG REDIS_DATASOURCE_SHA256=([0-9a-f]+)$", DOCKERFILE, re.M).group(1)
    assert len(digest) == 64
    # nixpkgs records the same archive's hash as SRI base64; both must name the same bytes.
    sri = re.search(r'"sha256-([A-Za-z0-9+/=]+)"', DOCKERFILE).group(1)
    assert base64.b64decode(sri).hex() == digest
    download = DOCKERFILE.index(
        "https://grafana.com/api/plugins/redis-datasource/versions/${REDIS_DATASOURCE_VERSION}/download"
    )
    check = DOCKERFILE.index('echo "${REDIS_DATASOURCE_SHA256}  /tmp/redis-datasource.zip" | sha256sum -c -')
    unpack = DOCKERFILE.index('unzip -q /tmp/redis-datasource.zip -d "$GF_PATHS_PLUGINS"')
    # THEN the archive is verified after the download and before anything is unpacked, over HTTPS only,
    # and nothing installs the plugin another way (grafana cli would skip the check)
    assert download < check < unpack
    assert "--proto '=https'" in DOCKERFILE
    assert "plugins install" not in DOCKERFILE
    assert "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS" not in DOCKERFILE


def test_the_checksum_command_rejects_a_different_archive(tmp_path):
    # The Dockerfile's check, run here with coreutils' sha256sum on a file that is not the archive.
    digest = re.search(r"^ARG REDIS_DATASOURCE_SHA256=([0-9a-f]+)$", DOCKERFILE, re.M).group(1)
    archive = tmp_path / "redis-datasource.zip"
    archive.write_bytes(b"not the plugin")
    check = subprocess.run(
        ["sha256sum", "-c", "-"],
        input=f"{digest}  {archive}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode != 0
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != digest


def test_dockerfile_copies_both_provisioning_trees():
    assert f"COPY provisioning/ {IMAGE_PROVISIONING_PATH}/" in DOCKERFILE
    assert f"COPY provisioning-tls/ {IMAGE_PROVISIONING_TLS_PATH}/" in DOCKERFILE
    # The TLS tree starts as a copy of the plain one (dashboards provider included), then the TLS
    # data source file of the same name replaces the plain one.
    copy = DOCKERFILE.index(f"cp -a {IMAGE_PROVISIONING_PATH}/. {IMAGE_PROVISIONING_TLS_PATH}/")
    assert copy < DOCKERFILE.index(f"COPY provisioning-tls/ {IMAGE_PROVISIONING_TLS_PATH}/")
    assert {p.name for p in (PROVISIONING_TLS_DIR / "datasources").iterdir()} == {
        p.name for p in (PROVISIONING_DIR / "datasources").iterdir()
    }


def test_dockerfile_sets_no_password_and_no_anonymous_access():
    assert not re.search(r"GF_SECURITY_ADMIN_PASSWORD\s*=", DOCKERFILE)
    assert "GF_AUTH_ANONYMOUS_ENABLED=false" in DOCKERFILE
    assert "GF_USERS_ALLOW_SIGN_UP=false" in DOCKERFILE


def test_home_dashboard_is_a_provisioned_dashboard():
    home = re.search(r"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=(\S+)", DOCKERFILE).group(1)

    assert Path(home).name in {p.name for p in dashboard_paths()}


def test_dockerignore_admits_only_the_build_inputs():
    lines = [line for line in (GRAFANA_DIR / ".dockerignore").read_text().splitlines() if line.strip()]
    rules = [line for line in lines if not line.startswith("#")]

    assert rules == ["*", "!Dockerfile", "!provisioning/", "!provisioning-tls/", "!dashboards/"]
