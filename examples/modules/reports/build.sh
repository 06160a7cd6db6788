#!/bin/sh
# Builds the reports binary.
#   ./build.sh           the statically linked release binary that the Dockerfile
#                        copies into a FROM scratch image (`image.build`); the
#                        explicit --target keeps build scripts and proc-macros dynamic.
#   ./build.sh --local   the local cloud's build phase (`local.build`): a debug build,
#                        copied into $PANTSTACK_ARTIFACTS, the directory the local
#                        cloud keeps for this revision and runs its tasks from.
set -eu
cd "$(dirname "$0")"
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path Cargo.toml \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}
if [ "${1:-}" = "--local" ]; then
  : "${PANTSTACK_ARTIFACTS:?run by the local cloud, which sets PANTSTACK_ARTIFACTS}"
  cargo build --manifest-path Cargo.toml --bin reports
  cp "$(target_dir)/debug/reports" "$PANTSTACK_ARTIFACTS/reports"
  exit 0
fi
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --target x86_64-unknown-linux-gnu --manifest-path Cargo.toml --bin reports
mkdir -p .build
cp "$(target_dir)/x86_64-unknown-linux-gnu/release/reports" .build/reports
# Readable and executable by the image's non-root user whatever the umask.
chmod 0755 .build/reports
