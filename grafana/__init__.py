"""Grafana for the fraud pipeline: file provisioning, versioned dashboards, the image, the ECS service
and a matplotlib renderer that runs the dashboards' own Redis queries.

The folder is the Docker build context of the image (`grafana/Dockerfile`); the Python modules here
are the CDK construct (`infrastructure.py`), its context (`config.py`), the query runner shared by the
renderer and the tests (`queries.py`) and the renderer (`render.py`).
"""

from __future__ import annotations

from pathlib import Path

GRAFANA_DIR = Path(__file__).resolve().parent
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
# Two provisioning trees that differ only in the data source's TLS switch: Grafana expands `$VAR` in
# provisioning files only into strings, and the Redis plugin reads `tlsAuth` as a JSON boolean, so the
# deployment picks a tree (GF_PATHS_PROVISIONING) instead of templating a boolean.
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"
PROVISIONING_TLS_DIR = GRAFANA_DIR / "provisioning-tls"

# Paths inside the image (grafana/Dockerfile copies the trees there).
IMAGE_PROVISIONING_PATH = "/etc/grafana/provisioning"
IMAGE_PROVISIONING_TLS_PATH = "/etc/grafana/provisioning-tls"
IMAGE_PLUGINS_PATH = "/usr/share/grafana-plugins"

# The provisioned Redis data source; every dashboard target refers to it by uid.
DATASOURCE_UID = "fraud-redis"
DATASOURCE_TYPE = "redis-datasource"
