#!/bin/sh
# Runs once, when the influxdb:2.x container sets itself up (docker-entrypoint-initdb.d).
# Grafana's dashboards speak InfluxQL, which InfluxDB 2.x serves on its v1 compatibility
# API (/query): that needs a DBRP mapping (database "ledwatch", retention policy
# "autogen" -> the ledwatch bucket) and a v1 user. The user is read-only.
set -eu

influx v1 dbrp create \
    --org "$DOCKER_INFLUXDB_INIT_ORG" \
    --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
    --db ledwatch --rp autogen --default

influx v1 auth create \
    --org "$DOCKER_INFLUXDB_INIT_ORG" \
    --username grafana \
    --password "$LEDWATCH_GRAFANA_INFLUX_PASSWORD" \
    --read-bucket "$DOCKER_INFLUXDB_INIT_BUCKET_ID"
