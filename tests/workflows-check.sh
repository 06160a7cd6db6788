#!/usr/bin/env bash
# Generates the GitHub Actions workflows of the example monorepo, the `init`
# scaffold and the varied fixture, then validates every file against GitHub's
# workflow schema (check-jsonschema's vendored copy) and audits them with zizmor
# (offline audits; any finding fails), and checks that `workflows --check` passes on
# what was just written and fails once a file is edited.
#
# Usage: tests/workflows-check.sh CHECK_JSONSCHEMA ZIZMOR   (paths to the executables)
set -euo pipefail
cd "$(dirname "$0")/.."
check_jsonschema=${1:?path to check-jsonschema}
zizmor=${2:?path to zizmor}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

bin=${PANTSTACK_BIN:-target/debug/pantstack}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

gen() { # NAME ROOT
  "$bin" --root "$2" workflows --out "$out/$1/.github/workflows" >/dev/null
}
gen example examples
"$bin" init "$out/scaffold" --github acme/demo >/dev/null
gen scaffold "$out/scaffold"
gen varied tests/fixtures/synth-varied

files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$out" -path '*/.github/workflows/*.yml' | sort)
echo "generated ${#files[@]} workflow files"
[ "${#files[@]}" -ge 8 ] || { echo "FAIL: expected at least 8 workflow files"; exit 1; }

echo "check-jsonschema $("$check_jsonschema" --version | tail -n 1)"
"$check_jsonschema" --builtin-schema vendor.github-workflows "${files[@]}"

echo "zizmor $("$zizmor" --version)"
for d in "$out"/*/.github/workflows; do
  # Every audit that runs offline, pedantic findings included; exit 0 only with none.
  "$zizmor" --offline --persona pedantic --no-progress "$d"
done
echo "zizmor: no findings"

# --check: clean right after writing; a hand edit is caught.
"$bin" --root examples workflows --out "$out/example/.github/workflows" --check >/dev/null
echo "# edited" >> "$out/example/.github/workflows/pantstack-deploy.yml"
if "$bin" --root examples workflows --out "$out/example/.github/workflows" --check >/dev/null 2>&1; then
  echo "FAIL: workflows --check passed on an edited file"; exit 1
fi
echo "workflows --check: catches an edited file"
