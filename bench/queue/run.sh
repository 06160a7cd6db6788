#!/usr/bin/env bash
# bench/queue/run.sh — the local cloud's SQS endpoint against moto's server (see bench/aws/run.sh).
#   bash bench/queue/run.sh            # ROUNDS=3 SECONDS_PER_RUN=5 by default
exec bash "$(dirname "$0")/../aws/run.sh" queue
