#!/usr/bin/env bash
# bench/objects/run.sh — the local cloud's S3 endpoint against moto's server (see bench/aws/run.sh).
#   bash bench/objects/run.sh            # ROUNDS=3 SECONDS_PER_RUN=5 by default
exec bash "$(dirname "$0")/../aws/run.sh" objects
