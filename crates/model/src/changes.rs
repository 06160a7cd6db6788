//! Which services a change touches: the path filters CI builds and deploys by.
//!
//! A service's inputs are its module directory (`modules/<service>/`), its image's
//! build context when that reaches outside the module, and the foundation
//! (`stack/infra/foundation/`, whose settings every service inherits). A file that
//! is none of these (a README at the root, `.github/`) touches no service.

use crate::Monorepo;
use pantstack_manifest::files::FOUNDATION_DIR;

/// The directories (relative to the monorepo root, no trailing `/`; `""` is the
/// whole monorepo) whose files are inputs of `service`.
pub fn inputs(repo: &Monorepo, service: &str) -> Vec<String> {
    let Some(unit) = repo.service(service) else {
        return Vec::new();
    };
    let svc = &unit.service;
    let mut dirs = vec![svc.dir.clone(), FOUNDATION_DIR.to_string()];
    // The build context and the Dockerfile's directory; one outside the
    // monorepo: every change counts.
    let dockerfile_dir = match svc.image.dockerfile.rsplit_once('/') {
        Some((d, _)) => format!("{}/{d}", svc.dir),
        None => svc.dir.clone(),
    };
    for extra in [format!("{}/{}", svc.dir, svc.image.context), dockerfile_dir] {
        let c = normalize(&extra).unwrap_or_default();
        if !dirs.iter().any(|d| under(&c, d)) {
            dirs.retain(|d| !under(d, &c));
            dirs.push(c);
        }
    }
    dirs.sort();
    dirs
}

/// The services (sorted, each once) whose inputs contain one of `paths` (relative
/// to the monorepo root), and the services related to those whose
/// infrastructure changed: a grant, a call or a taken secret puts rules in the
/// other service's stack (a grant changed from read to write changes the
/// grantee's role), so both are deployed.
pub fn touched(repo: &Monorepo, paths: &[String]) -> Vec<String> {
    let hit = |dirs: &[String]| {
        paths.iter().any(|p| {
            let p = p.trim_start_matches("./");
            dirs.iter().any(|d| under(p, d))
        })
    };
    let mut out: Vec<String> = Vec::new();
    let mut infra: Vec<String> = Vec::new();
    for name in repo.service_names() {
        if hit(&inputs(repo, name)) {
            out.push(name.to_string());
        }
        if let Some(u) = repo.service(name)
            && hit(&[format!("{}/infrastructure", u.service.dir)])
        {
            infra.push(name.to_string());
        }
    }
    for name in &infra {
        for other in related(repo, name) {
            if !out.contains(&other) {
                out.push(other);
            }
        }
    }
    out.sort();
    out
}

/// Services whose stacks hold something of `name`'s, or `name`'s of theirs:
/// grants either way, calls either way, secrets taken from it, references to
/// its queues and buckets.
pub fn related(repo: &Monorepo, name: &str) -> Vec<String> {
    let Some(unit) = repo.service(name) else {
        return Vec::new();
    };
    let svc = &unit.service;
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if s != name && repo.service(s).is_some() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    let grants = svc
        .queues
        .iter()
        .flat_map(|q| q.grants.iter())
        .chain(svc.buckets.iter().flat_map(|b| b.grants.iter()))
        .chain(svc.secrets.iter().flat_map(|s| s.grants.iter()));
    for g in grants {
        add(&g.to.value);
    }
    for c in &svc.calls {
        add(&c.value);
    }
    for f in &svc.foreign {
        add(&f.owner);
    }
    for s in svc.secrets.iter().filter_map(|s| s.from.as_ref()) {
        add(&s.value);
    }
    for other in &repo.services {
        let o = &other.service;
        let refers = o.calls.iter().any(|c| c.value == name)
            || o.foreign.iter().any(|f| f.owner == name)
            || o.secrets
                .iter()
                .any(|s| s.from.as_ref().is_some_and(|f| f.value == name))
            || o.queues
                .iter()
                .flat_map(|q| q.grants.iter())
                .chain(o.buckets.iter().flat_map(|b| b.grants.iter()))
                .chain(o.secrets.iter().flat_map(|s| s.grants.iter()))
                .any(|g| g.to.value == name);
        if refers {
            add(&o.name);
        }
    }
    out.sort();
    out
}

/// Whether `path` is `dir` or inside it (`""` holds everything).
fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// `modules/api/../../x/.` → `x`; `None` for a path that leaves the root (its
/// files cannot be named relative to it: every change counts).
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_directories() {
        assert!(under("modules/api/src/main.rs", "modules/api"));
        assert!(!under("modules/api2/src/main.rs", "modules/api"));
        assert!(under("anything", ""));
        assert_eq!(normalize("modules/api/.").as_deref(), Some("modules/api"));
        assert_eq!(normalize("modules/api/../..").as_deref(), Some(""));
        assert_eq!(
            normalize("modules/api/../shared").as_deref(),
            Some("modules/shared")
        );
        assert_eq!(normalize("modules/api/../../.."), None);
    }
}
