#!/bin/sh
# Builds the statically linked binary that the Dockerfile copies into a FROM scratch
# image. The explicit --target keeps build scripts and proc-macros dynamic.
set -eu
cd "$(dirname "$0")"
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --target x86_64-unknown-linux-gnu --manifest-path Cargo.toml --bin api
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path Cargo.toml \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p .build
cp "$target_dir/x86_64-unknown-linux-gnu/release/api" .build/api
# Readable and executable by the image's non-root user whatever the umask.
chmod 0755 .build/api
