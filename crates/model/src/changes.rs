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
    // A context outside the monorepo: every change counts.
    let c = normalize(&format!("{}/{}", svc.dir, svc.image.context)).unwrap_or_default();
    if !dirs.iter().any(|d| under(&c, d)) {
        dirs.retain(|d| !under(d, &c));
        dirs.push(c);
    }
    dirs.sort();
    dirs
}

/// The services (sorted, each once) whose inputs contain one of `paths` (relative
/// to the monorepo root).
pub fn touched(repo: &Monorepo, paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in repo.service_names() {
        let dirs = inputs(repo, name);
        if paths.iter().any(|p| {
            let p = p.trim_start_matches("./");
            dirs.iter().any(|d| under(p, d))
        }) {
            out.push(name.to_string());
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
