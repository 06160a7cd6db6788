//! GitHub Actions workflows for the monorepo (`pantstack workflows`): checks on
//! every pull request, deploys of each long-lived environment from its branches,
//! previews per pull request and their garbage collection.
//!
//! Every AWS step assumes the environment's CI role through GitHub's OIDC provider
//! (`id-token: write`, no stored keys); the role's trust policy (see
//! `foundation::ci_subjects`) admits exactly the `sub` claims these jobs present:
//! a job with `environment: E` presents `environment:E`, a pull-request job
//! `pull_request`. Actions are pinned by commit. Values from the event reach shell
//! scripts only through `env:` (never `${{ }}` inside `run:`), so a branch name
//! cannot inject commands.
//!
//! Pure: the same model gives the same bytes.

use pantstack_manifest::Diagnostic;
use pantstack_model::foundation::PREVIEW_STACK;
use pantstack_model::physical::{MAX_REGION, fit};
use pantstack_model::{Monorepo, changes};

/// `actions/checkout` v4.2.2.
pub const CHECKOUT: &str = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2";
/// `aws-actions/configure-aws-credentials` v4.0.2.
pub const AWS_CREDENTIALS: &str =
    "aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2";

#[derive(Clone, Debug)]
pub struct Options {
    /// The shell line that installs `pantstack` on a runner.
    pub install: String,
    /// The monorepo's directory relative to the git repository's root (`""`: the
    /// root itself), where every `pantstack` command runs.
    pub root: String,
}

/// The environments' CI role names, for the generated `role-to-assume`.
pub fn ci_role(project: &str, base: &str, region: &str) -> String {
    // As `Names::base_role("ci")` with the region substituted.
    format!(
        "{}-{region}",
        fit(&format!("{project}-{base}-ci"), 64 - 1 - MAX_REGION)
    )
}

/// The workflow files (name, contents), or why there can be none.
pub fn workflows(repo: &Monorepo, o: &Options) -> Result<Vec<crate::File>, Vec<Diagnostic>> {
    let f = &repo.foundation;
    let manifest = &f.manifest_file;
    let Some(gh) = &f.github else {
        return Err(vec![
            Diagnostic::error(
                "no-github",
                manifest,
                f.project.span,
                "github",
                "the workflows deploy through the CI roles, which trust one GitHub repository: the foundation manifest names none".to_string(),
            )
            .with_help("add `github: { owner: ORG, repo: NAME }` to the foundation manifest, then `pantstack bootstrap` each environment"),
        ]);
    };
    let mut regions = Vec::new();
    let mut stacks: Vec<&str> = f.env_names();
    if f.previews_enabled {
        stacks.push(PREVIEW_STACK);
    }
    let mut missing = Vec::new();
    for s in &stacks {
        match repo.region_for(s) {
            Some((r, _)) => regions.push((s.to_string(), r)),
            None => missing.push(s.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(vec![
            Diagnostic::error(
                "no-region",
                manifest,
                f.project.span,
                "region",
                format!("no region for {}: the workflows name each environment's region", missing.join(", ")),
            )
            .with_help("add `region:` to the foundation manifest or `aws:region` to the environment's stack file"),
        ]);
    }
    let w = Writer {
        repo,
        o,
        project: &f.project.value,
        owner: &gh.owner,
        name: &gh.repo,
        regions,
    };
    let mut files = vec![crate::File {
        name: "pantstack-checks.yml".into(),
        contents: w.checks(),
    }];
    // An environment without branches is deployed by hand only.
    if f.environments.iter().any(|e| !e.branches.is_empty()) {
        files.push(crate::File {
            name: "pantstack-deploy.yml".into(),
            contents: w.deploy(),
        });
    }
    if f.previews_enabled {
        files.push(crate::File {
            name: "pantstack-preview.yml".into(),
            contents: w.preview(),
        });
    }
    Ok(files)
}

struct Writer<'a> {
    repo: &'a Monorepo,
    o: &'a Options,
    project: &'a str,
    owner: &'a str,
    name: &'a str,
    /// `(stack name, region)` of each environment and of `preview`.
    regions: Vec<(String, String)>,
}

/// Every file name this module may write (so a file no longer generated, like
/// the preview workflow after previews were disabled, can be found and removed).
pub const FILES: &[&str] = &[
    "pantstack-checks.yml",
    "pantstack-deploy.yml",
    "pantstack-preview.yml",
];

/// A branch name as a GitHub push filter: glob characters escaped; a prefix
/// pattern (`release/*`) matches every branch under it, `/` included (`**`).
fn branch_filter(b: &str) -> String {
    let (name, prefix) = match b.strip_suffix('*') {
        Some(p) => (p, true),
        None => (b, false),
    };
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if matches!(c, '*' | '?' | '+' | '[' | ']') || (i == 0 && c == '!') {
            out.push('\\');
        }
        out.push(c);
    }
    if prefix {
        out.push_str("**");
    }
    out
}

/// A YAML single-quoted scalar.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Writer<'_> {
    fn header(&self, what: &str) -> String {
        format!(
            "# {what}\n#\n# Written by `pantstack workflows` from the manifests of {owner}/{name}; run it\n# again after adding a service or changing environments (a test can diff them:\n# `pantstack workflows --check`). Every AWS step assumes the environment's CI role\n# through GitHub OIDC: set the repository variable AWS_ACCOUNT_ID, and bootstrap\n# each environment once (`pantstack bootstrap --env ENV`).\n",
            owner = self.owner,
            name = self.name,
        )
    }

    fn region(&self, stack: &str) -> &str {
        self.regions
            .iter()
            .find(|(s, _)| s == stack)
            .map(|(_, r)| r.as_str())
            .unwrap_or_default()
    }

    fn role_arn(&self, base: &str) -> String {
        format!(
            "arn:aws:iam::${{{{ vars.AWS_ACCOUNT_ID }}}}:role/{}",
            ci_role(self.project, base, self.region(base))
        )
    }

    /// `working-directory:` for a step, when the monorepo is not the git root.
    fn wd(&self) -> String {
        if self.o.root.is_empty() {
            String::new()
        } else {
            format!("        working-directory: {}\n", q(&self.o.root))
        }
    }

    /// The git-root-relative glob of every service input (`modules/api/**`).
    fn paths(&self) -> Vec<String> {
        let mut dirs: Vec<String> = Vec::new();
        for s in self.repo.service_names() {
            for d in changes::inputs(self.repo, s) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        dirs.sort();
        let prefix = |d: &str| match (self.o.root.is_empty(), d.is_empty()) {
            (true, true) => "**".to_string(),
            (true, false) => format!("{d}/**"),
            (false, true) => format!("{}/**", self.o.root),
            (false, false) => format!("{}/{d}/**", self.o.root),
        };
        dirs.iter().map(|d| prefix(d)).collect()
    }

    fn checkout(&self, full_history: bool) -> String {
        let depth = if full_history {
            "          fetch-depth: 0\n"
        } else {
            ""
        };
        format!(
            "      - uses: {CHECKOUT}\n        with:\n          persist-credentials: false\n{depth}"
        )
    }

    /// A pull request's own head commit (not GitHub's merge commit, which is
    /// recomputed on every push and so never the commit a preview runs): image
    /// tags and `changed --deployed` then name commits the next run has.
    fn checkout_head(&self, full_history: bool) -> String {
        format!(
            "{}          ref: ${{{{ github.event.pull_request.head.sha }}}}\n",
            self.checkout(full_history)
        )
    }

    fn install(&self) -> String {
        format!(
            "      - name: Install pantstack\n        run: {}\n",
            q(&self.o.install)
        )
    }

    fn credentials(&self, base: &str) -> String {
        format!(
            "      - name: Assume the {base} CI role (GitHub OIDC)\n        uses: {AWS_CREDENTIALS}\n        with:\n          role-to-assume: {}\n          aws-region: {}\n          role-session-name: pantstack-${{{{ github.run_id }}}}\n",
            self.role_arn(base),
            self.region(base),
        )
    }

    fn checks(&self) -> String {
        let f = &self.repo.foundation;
        let mut synth = String::new();
        for env in f.env_names() {
            synth.push_str(&format!(
                "          pantstack synth --env {env} --out \"$RUNNER_TEMP/synth/{env}\"\n"
            ));
        }
        if f.previews_enabled {
            synth.push_str(
                "          pantstack synth --pr \"$PR\" --out \"$RUNNER_TEMP/synth/preview\"\n",
            );
        }
        let mut s = self.header("Checks on every pull request: the manifests, the templates of every\n# environment, and what the pull request's preview would change.");
        s.push_str("name: pantstack checks\n\non:\n  pull_request:\n\npermissions: {}\n\nconcurrency:\n  group: pantstack-checks-${{ github.event.pull_request.number }}\n  cancel-in-progress: true\n\njobs:\n");
        s.push_str("  check:\n    name: check and synth\n    runs-on: ubuntu-latest\n    timeout-minutes: 30\n    permissions:\n      contents: read # check out the repository\n    steps:\n");
        s.push_str(&self.checkout(false));
        s.push_str(&self.install());
        s.push_str("      - name: Check the manifests\n");
        s.push_str(&self.wd());
        s.push_str("        run: pantstack check\n");
        s.push_str("      - name: Synthesize every environment\n");
        s.push_str(&self.wd());
        s.push_str(
            "        env:\n          PR: ${{ github.event.pull_request.number }}\n        run: |\n",
        );
        s.push_str(&synth);
        if f.previews_enabled {
            s.push_str("\n  diff:\n    name: diff (preview)\n    needs: check\n    # Pull requests from forks get no OIDC token.\n    if: github.event.pull_request.head.repo.full_name == github.repository\n    runs-on: ubuntu-latest\n    timeout-minutes: 30\n    permissions:\n      contents: read # check out the repository\n      id-token: write # assume the CI role through GitHub OIDC\n    steps:\n");
            s.push_str(&self.checkout(false));
            s.push_str(&self.install());
            s.push_str(&self.credentials(PREVIEW_STACK));
            s.push_str("      - name: What a deploy of the preview would change\n");
            s.push_str(&self.wd());
            s.push_str("        env:\n          PR: ${{ github.event.pull_request.number }}\n        run: pantstack diff --pr \"$PR\"\n");
        }
        s
    }

    fn deploy(&self) -> String {
        let f = &self.repo.foundation;
        let mut branches: Vec<&str> = Vec::new();
        for e in &f.environments {
            for b in &e.branches {
                if !branches.contains(&b.as_str()) {
                    branches.push(b);
                }
            }
        }
        let mut s = self.header("Deploys each environment from its branches: only the services whose\n# files changed are built and deployed.");
        s.push_str("name: pantstack deploy\n\non:\n  push:\n    branches:\n");
        for b in &branches {
            s.push_str(&format!("      - {}\n", q(&branch_filter(b))));
        }
        s.push_str("    paths:\n");
        for p in self.paths() {
            s.push_str(&format!("      - {}\n", q(&p)));
        }
        s.push_str("\npermissions: {}\n\njobs:\n");
        for e in &f.environments {
            if e.branches.is_empty() {
                continue;
            }
            let cond = self.condition(&e.name);
            let env = &e.name;
            s.push_str(&format!(
                "  {env}:\n    name: deploy {env}\n    if: {cond}\n    runs-on: ubuntu-latest\n    timeout-minutes: 60\n    # Protect it in Settings → Environments (required reviewers for prod).\n    environment: {env}\n    concurrency:\n      group: pantstack-deploy-{env}\n      cancel-in-progress: false\n    permissions:\n      contents: read # check out the repository\n      id-token: write # assume the CI role through GitHub OIDC\n    steps:\n"
            ));
            s.push_str(&self.checkout(true));
            s.push_str(&self.install());
            s.push_str(&self.credentials(env));
            s.push_str("      - name: Build and deploy the services that differ from what the environment runs\n");
            s.push_str(&self.wd());
            s.push_str(&format!(
                "        run: |\n          services=$(pantstack changed --deployed --env {env})\n          if [ -z \"$services\" ]; then echo \"{env} runs this commit's services already\"; exit 0; fi\n          echo \"deploying: $services\"\n          # shellcheck disable=SC2086 # one word per service\n          pantstack up $services --target aws --env {env} --lock-wait 30m\n"
            ));
        }
        s
    }

    /// The `if:` of an environment's deploy job: exactly the branches
    /// `pantstack env` resolves to it (exact names win over prefixes; among
    /// prefixes, the first environment that lists one).
    fn condition(&self, env: &str) -> String {
        let f = &self.repo.foundation;
        let exact: Vec<&str> = f
            .environments
            .iter()
            .flat_map(|e| e.branches.iter())
            .filter(|b| !b.ends_with('*'))
            .map(String::as_str)
            .collect();
        let mut earlier: Vec<&str> = Vec::new();
        let mut terms = Vec::new();
        for e in &f.environments {
            for b in &e.branches {
                let Some(prefix) = b.strip_suffix('*') else {
                    if e.name == env {
                        terms.push(format!("github.ref == {}", q(&format!("refs/heads/{b}"))));
                    }
                    continue;
                };
                if e.name == env {
                    let mut t = vec![
                        format!(
                            "startsWith(github.ref, {})",
                            q(&format!("refs/heads/{prefix}"))
                        ),
                        format!("github.ref != {}", q(&format!("refs/heads/{prefix}"))),
                    ];
                    for x in exact.iter().filter(|x| x.starts_with(prefix)) {
                        t.push(format!("github.ref != {}", q(&format!("refs/heads/{x}"))));
                    }
                    for p in earlier
                        .iter()
                        .filter(|p| prefix.starts_with(**p) || p.starts_with(prefix))
                    {
                        t.push(format!(
                            "!startsWith(github.ref, {})",
                            q(&format!("refs/heads/{p}"))
                        ));
                    }
                    terms.push(format!("({})", t.join(" && ")));
                }
                earlier.push(prefix);
            }
        }
        terms.join(" || ")
    }

    fn preview(&self) -> String {
        let mut s = self.header("Preview environments: one per pull request (preview-<number>), updated on\n# every push, destroyed when the pull request closes or after the TTL of\n# inactivity (the daily gc).");
        s.push_str("name: pantstack preview\n\non:\n  pull_request:\n    types: [opened, reopened, synchronize, closed]\n  schedule:\n    - cron: '23 4 * * *'\n  workflow_dispatch:\n\npermissions: {}\n\njobs:\n");
        s.push_str("  up:\n    name: preview up\n    if: github.event_name == 'pull_request' && github.event.action != 'closed' && github.event.pull_request.head.repo.full_name == github.repository\n    runs-on: ubuntu-latest\n    timeout-minutes: 60\n    concurrency:\n      group: pantstack-preview-${{ github.event.pull_request.number }}\n      cancel-in-progress: false\n    permissions:\n      contents: read # check out the repository\n      id-token: write # assume the CI role through GitHub OIDC\n    steps:\n");
        s.push_str(&self.checkout_head(true));
        s.push_str(&self.install());
        s.push_str(&self.credentials(PREVIEW_STACK));
        s.push_str("      - name: Deploy the preview (the services that differ from what it runs; none if the pull request changes no service)\n");
        s.push_str(&self.wd());
        s.push_str(
            "        env:\n          PR: ${{ github.event.pull_request.number }}\n          BASE: ${{ github.event.pull_request.base.sha }}\n        run: |\n          touched=$(pantstack changed --base \"$BASE\")\n          if [ -z \"$touched\" ]; then echo \"this pull request changes no service: no preview\"; exit 0; fi\n          services=$(pantstack changed --deployed --env \"preview-$PR\")\n          if [ -z \"$services\" ]; then echo \"the preview runs this commit already\"; pantstack preview touch --pr \"$PR\" --lock-wait 30m; exit 0; fi\n          # shellcheck disable=SC2086 # one word per service\n          pantstack preview up --pr \"$PR\" $services --lock-wait 30m\n",
        );
        s.push_str("\n  down:\n    name: preview down\n    if: github.event_name == 'pull_request' && github.event.action == 'closed' && github.event.pull_request.head.repo.full_name == github.repository\n    runs-on: ubuntu-latest\n    timeout-minutes: 60\n    concurrency:\n      group: pantstack-preview-${{ github.event.pull_request.number }}\n      cancel-in-progress: false\n    permissions:\n      contents: read # check out the repository\n      id-token: write # assume the CI role through GitHub OIDC\n    steps:\n");
        s.push_str(&self.checkout_head(false));
        s.push_str(&self.install());
        s.push_str(&self.credentials(PREVIEW_STACK));
        s.push_str("      - name: Destroy the preview (stacks, data, images, parameters)\n");
        s.push_str(&self.wd());
        s.push_str("        env:\n          PR: ${{ github.event.pull_request.number }}\n        run: pantstack preview down --pr \"$PR\" --yes --lock-wait 30m\n");
        s.push_str(&format!(
            "\n  gc:\n    name: preview gc\n    if: github.event_name != 'pull_request'\n    runs-on: ubuntu-latest\n    timeout-minutes: 60\n    # The preview CI role trusts this environment's jobs (and pull requests).\n    environment: {PREVIEW_STACK}\n    concurrency:\n      group: pantstack-preview-gc\n      cancel-in-progress: false\n    permissions:\n      contents: read # check out the repository\n      id-token: write # assume the CI role through GitHub OIDC\n    steps:\n"
        ));
        s.push_str(&self.checkout(false));
        s.push_str(&self.install());
        s.push_str(&self.credentials(PREVIEW_STACK));
        s.push_str(&format!(
            "      - name: Destroy previews idle longer than the TTL\n{}        run: pantstack preview gc --yes\n",
            self.wd()
        ));
        s
    }
}
