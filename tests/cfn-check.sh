#!/usr/bin/env bash
# Synthesizes every template of the example monorepo, the `init` scaffold and the
# varied fixture, in every environment (and a preview, and another region), then runs
# cfn-lint (zero errors, zero warnings) and checkov (zero failed checks) on all of them.
#
# Usage: tests/cfn-check.sh CFN_LINT CHECKOV   (paths to the two executables)
set -euo pipefail
cd "$(dirname "$0")/.."
cfn_lint=${1:?path to cfn-lint}
checkov=${2:?path to checkov}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

bin=${PANTSTACK_BIN:-target/debug/pantstack}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

synth() { # NAME ROOT ARGS...
  local name=$1 root=$2; shift 2
  "$bin" --root "$root" synth --out "$out/$name" "$@" >/dev/null
}

synth example-test examples --env test
synth example-prod examples --env prod
synth example-preview examples --pr 12
synth example-prod-eu-west-1 examples --env prod --region eu-west-1
"$bin" init "$out/scaffold-repo" >/dev/null
synth scaffold-test "$out/scaffold-repo" --env test
synth scaffold-prod "$out/scaffold-repo" --env prod
synth varied-test tests/fixtures/synth-varied --env test
synth varied-prod tests/fixtures/synth-varied --env prod
synth varied-preview tests/fixtures/synth-varied --pr 7
rm -rf "$out/scaffold-repo"
# The example with one load balancer per environment (network.load_balancer: shared).
cp -r examples "$out/shared-repo"
rm -rf "$out/shared-repo/.pantstack"
sed -i 's/^network:$/network:\n  load_balancer: shared/' "$out/shared-repo/stack/infra/foundation/pantstack.yaml"
grep -q 'load_balancer: shared' "$out/shared-repo/stack/infra/foundation/pantstack.yaml" || { echo "FAIL: could not make the shared-LB example"; exit 1; }
synth shared-test "$out/shared-repo" --env test
synth shared-preview "$out/shared-repo" --pr 5
# prod with the environment's certificate: HTTPS:443 listeners, port 80 redirecting.
echo '  pantstack:loadBalancerCertificateArn: arn:aws:acm:us-east-1:123456789012:certificate/0f6c1c3e-1111-2222-3333-444455556666' \
  >>"$out/shared-repo/stack/infra/foundation/Pulumi.prod.yaml"
synth shared-prod "$out/shared-repo" --env prod
grep -q '"HttpsListener0"' "$out/shared-prod/shop-prod-load-balancer.json" || { echo "FAIL: the shared-LB prod has no HTTPS listener"; exit 1; }
rm -rf "$out/shared-repo"

# 200 HTTP services (each with a worker and a queue) sharing one load balancer:
# cfn-lint only (checkov's checks are the same per service and take minutes here).
big=$(mktemp -d)
trap 'rm -rf "$out" "$big"' EXIT
mkdir -p "$big/repo/stack/infra/foundation"
cp examples/stack/infra/foundation/Pulumi.yaml examples/stack/infra/foundation/Pulumi.*.yaml "$big/repo/stack/infra/foundation/"
sed 's/^network:$/network:\n  load_balancer: shared\n  load_balancers: 4/' examples/stack/infra/foundation/pantstack.yaml \
  >"$big/repo/stack/infra/foundation/pantstack.yaml"
for i in $(seq -w 1 200); do
  d="$big/repo/modules/svc$i/infrastructure"
  mkdir -p "$d"
  printf 'name: shop-svc%s\nruntime: python\n' "$i" >"$d/Pulumi.yaml"
  printf 'service: svc%s\nhttp:\n  command: ["/s"]\nworker:\n  queue: jobs\n  command: ["/w"]\nqueues:\n  jobs: {}\nbuckets:\n  files: {}\n' "$i" >"$d/pantstack.yaml"
done
"$bin" --root "$big/repo" synth --out "$big/prod" --env prod >/dev/null
# Its previews' foundation: one task role per service, shared by every preview
# (over 51,200 bytes: bootstrap passes it through the template bucket).
"$bin" --root "$big/repo" synth --out "$big/preview" --pr 3 >/dev/null
big_templates=("$big"/prod/*.json "$big"/preview/shop-preview-foundation.json)
# With 4 shared load balancers it fits every default quota, previews.max previews
# included, except Fargate's vCPUs: 200 services with a worker ask 100 vCPUs an
# environment at the minimum task counts, and a new account gets 6 (On-Demand
# and Spot each). `quotas` says so and exits 1; nothing else may be over.
set +e
"$bin" --root "$big/repo" quotas >"$big/quotas.txt" 2>&1
rc=$?
set -e
over=$(grep -c '^  OVER' "$big/quotas.txt" || true)
fargate_over=$(grep -c '^  OVER Fargate \(On-Demand\|Spot\) vCPUs' "$big/quotas.txt" || true)
[ "$rc" -eq 1 ] && [ "$over" -eq 2 ] && [ "$fargate_over" -eq 2 ] && grep -q -- '--quota-code L-3032A538 --desired-value' "$big/quotas.txt" \
  || { cat "$big/quotas.txt"; echo "FAIL: the 200-service monorepo should exceed only the default Fargate vCPU quotas (exit 1), got exit $rc with $over over"; exit 1; }
echo "quotas (200 services, test, prod, previews): only the default Fargate vCPU quotas exceeded (a quota increase)"
n_big=$(ls "$big"/prod/shop-prod-svc*.json | wc -l)
[ "$n_big" -eq 200 ] || { echo "FAIL: expected 200 service templates, got $n_big"; exit 1; }
albs=$(grep -l '"AWS::ElasticLoadBalancingV2::LoadBalancer"' "$big"/prod/*.json | wc -l)
nalb=$(grep -o '"AWS::ElasticLoadBalancingV2::LoadBalancer"' "$big"/prod/*.json | wc -l)
[ "$albs" -eq 1 ] && [ "$nalb" -eq 4 ] || { echo "FAIL: 200 services sharing load balancers (1,000 targets an ALB) should make 4 ALBs in one stack, made $nalb in $albs"; exit 1; }

templates=()
while IFS= read -r f; do templates+=("$f"); done < <(find "$out" -name '*.json' ! -name stacks.json | sort)
echo "synthesized ${#templates[@]} templates"
[ "${#templates[@]}" -ge 20 ] || { echo "FAIL: expected at least 20 templates"; exit 1; }

# Region independence: the same environment for another region differs only in stacks.json.
for f in "$out"/example-prod/*.json; do
  b=$(basename "$f")
  [ "$b" = stacks.json ] && continue
  cmp -s "$f" "$out/example-prod-eu-west-1/$b" || { echo "FAIL: $b differs between regions"; exit 1; }
done

# CloudFormation takes at most 51,200 bytes inline (templates are written minified).
for f in "${templates[@]}"; do
  size=$(wc -c <"$f")
  [ "$size" -le 51200 ] || { echo "FAIL: $(basename "$f") is $size bytes (over 51,200: needs a template bucket)"; exit 1; }
done

echo "cfn-lint $("$cfn_lint" --version)"
# Exit 0 only with no error and no warning (2 = errors, 4 = warnings).
"$cfn_lint" --regions us-east-1 eu-west-1 eu-central-1 ap-southeast-3 -- "${templates[@]}"
echo "cfn-lint: 0 errors, 0 warnings"
echo "cfn-lint on 200 services sharing a load balancer (${#big_templates[@]} files)"
"$cfn_lint" --regions us-east-1 -- $(printf '%s\n' "${big_templates[@]}" | grep -v stacks.json)
echo "cfn-lint (200 services): 0 errors, 0 warnings"

echo "checkov $("$checkov" --version)"
report="$out/checkov.json"
set +e
"$checkov" --skip-download --framework cloudformation -d "$out" -o json >"$report" 2>"$out/checkov.err"
rc=$?
set -e
python3 - "$report" "${#templates[@]}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
runs = data if isinstance(data, list) else [data]
passed = failed = skipped = 0
files = set()
for r in runs:
    s = r.get("summary", {})
    passed += s.get("passed", 0); failed += s.get("failed", 0); skipped += s.get("skipped", 0)
    for c in r.get("results", {}).get("failed_checks", []):
        print(f"FAILED {c['check_id']} {c['check_name']} in {c['file_path']} {c['resource']}")
    for c in r.get("results", {}).get("passed_checks", []):
        files.add(c["file_path"])
print(f"checkov: {passed} passed, {failed} failed, {skipped} skipped (inline, with reasons) in {len(files)} templates")
parse_errors = sum(r.get("summary", {}).get("parsing_errors", 0) for r in runs)
if parse_errors:
    print(f"FAILED: checkov could not parse {parse_errors} template(s)")
if failed or parse_errors or passed == 0 or len(files) != int(sys.argv[2]):
    sys.exit(1)
PY
[ "$rc" -eq 0 ] || { echo "FAIL: checkov exited $rc"; cat "$out/checkov.err" | tail -5; exit 1; }
