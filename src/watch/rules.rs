//! Which changes matter to which service: the built-in ignores (`IGNORED_DIRS`, editors' temp
//! files), `.gitignore`s, `.devstackignore`s and `.git/info/exclude`, each service's `watch` and
//! `ignore` globs; whether a file's content changed (hashes); and the folders walked (each
//! service's `cwd`, none inside another).

use crate::config::{Config, ServiceId};
use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::Gitignore;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};

/// Folders no service wants rebuilt for, wherever they are.
pub(super) const IGNORED_DIRS: &[&str] =
    &[".git", ".devstack", "target", "node_modules", ".hg", ".svn"];
/// Ignore files honoured in every folder.
pub(super) const IGNORE_FILES: [&str; 2] = [".gitignore", ".devstackignore"];
/// Files bigger than this are not hashed; any event on them counts as a change.
const HASH_LIMIT: u64 = 16 * 1024 * 1024;

/// A service's own rules: globs relative to its `cwd`.
pub(super) struct ServiceRules {
    pub(super) service: ServiceId,
    pub(super) cwd: PathBuf,
    watch: GlobSet,
    ignore: GlobSet,
}

impl ServiceRules {
    /// The rules of each service that has `watch` globs.
    pub(super) fn of(cfg: &Config) -> Result<Vec<ServiceRules>, globset::Error> {
        let mut services = Vec::new();
        for (i, s) in cfg.services.iter() {
            if s.watch.is_empty() {
                continue;
            }
            services.push(ServiceRules {
                service: i,
                cwd: s.cwd.clone(),
                watch: globset(&s.watch)?,
                ignore: globset(&s.ignore)?,
            });
        }
        Ok(services)
    }
}

/// Every rule, and what was seen of each file.
pub(super) struct Rules {
    /// The stack's folder: changed paths are shown relative to it.
    root: PathBuf,
    /// The folders walked and watched: each watching service's `cwd` (none inside another).
    pub(super) trees: Vec<PathBuf>,
    /// Ignore files and their matchers (`.git/info/exclude` under the root's key).
    gitignores: Vec<(PathBuf, Gitignore)>,
    pub(super) services: Vec<ServiceRules>,
    hashes: HashMap<PathBuf, u64>,
    /// Folders being watched (a vanished one is not a changed file).
    pub(super) dirs: std::collections::HashSet<PathBuf>,
}

fn globset(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p)?);
    }
    b.build()
}

/// Editors' swap, backup and lock files.
fn editor_temp(name: &str) -> bool {
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name == "4913"
        || name.starts_with(".#")
}

impl Rules {
    /// The rules of `services`, whose `trees` are walked, in the stack at `root`.
    pub(super) fn new(root: PathBuf, trees: Vec<PathBuf>, services: Vec<ServiceRules>) -> Rules {
        let mut rules = Rules {
            root: root.clone(),
            trees: trees.clone(),
            dirs: Default::default(),
            gitignores: Vec::new(),
            services,
            hashes: HashMap::new(),
        };
        // The ignore files of the folders between the stack's and each tree apply inside it (read
        // once: those folders are not watched).
        for tree in &trees {
            for folder in tree
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(&root))
            {
                for name in IGNORE_FILES {
                    rules.load_ignore_file(&folder.join(name));
                }
            }
        }
        rules.load_exclude(&root);
        rules
    }

    pub(super) fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Some(rel) = self.trees.iter().find_map(|t| path.strip_prefix(t).ok()) else {
            return true;
        };
        if rel
            .components()
            .any(|c| IGNORED_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()))
        {
            return true;
        }
        if path
            .file_name()
            .is_some_and(|n| editor_temp(&n.to_string_lossy()))
        {
            return true;
        }
        self.gitignores
            .iter()
            .filter(|(_, g)| path.starts_with(g.path()))
            .any(|(_, g)| g.matched_path_or_any_parents(path, is_dir).is_ignore())
    }

    /// (Re)read an ignore file: at the start, and whenever it changes.
    pub(super) fn load_ignore_file(&mut self, file: &Path) {
        self.gitignores.retain(|(f, _)| f != file);
        if file.is_file() {
            let (gi, _) = Gitignore::new(file);
            self.gitignores.push((file.to_path_buf(), gi));
        }
    }

    /// Read `dir/.git/info/exclude`, if there is one, as an ignore file of `dir`.
    pub(super) fn load_exclude(&mut self, dir: &Path) {
        let exclude = dir.join(".git/info/exclude");
        if !exclude.is_file() || self.gitignores.iter().any(|(f, _)| *f == exclude) {
            return;
        }
        let mut b = ignore::gitignore::GitignoreBuilder::new(dir);
        b.add(&exclude);
        if let Ok(gi) = b.build() {
            self.gitignores.push((exclude, gi));
        }
    }

    /// Did the content change since we last looked? (Unknown before: yes.)
    fn content_changed(&mut self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            // Deleted (or unreadable): that is a change.
            self.hashes.remove(path);
            return true;
        };
        if !meta.is_file() || meta.len() > HASH_LIMIT {
            return true;
        }
        let Ok(bytes) = std::fs::read(path) else {
            return true;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let hash = h.finish();
        self.hashes.insert(path.to_path_buf(), hash) != Some(hash)
    }

    /// The services a set of changed paths concern, with the paths each cares about.
    pub(super) fn route(&mut self, paths: BTreeSet<PathBuf>) -> Vec<(ServiceId, Vec<String>)> {
        let mut by_service: HashMap<ServiceId, Vec<String>> = HashMap::new();
        // Files that came and went within the batch (an editor's temp file before its rename)
        // count only when nothing else of the service changed.
        let mut fleeting: HashMap<ServiceId, Vec<String>> = HashMap::new();
        for path in paths {
            if self.ignored(&path, path.is_dir()) || path.is_dir() || self.dirs.contains(&path) {
                continue;
            }
            let wanted: Vec<ServiceId> = self
                .services
                .iter()
                .filter(|s| {
                    path.strip_prefix(&s.cwd)
                        .is_ok_and(|rel| s.watch.is_match(rel) && !s.ignore.is_match(rel))
                })
                .map(|s| s.service)
                .collect();
            let gone_unseen = !path.exists() && !self.hashes.contains_key(&path);
            if wanted.is_empty() || !self.content_changed(&path) {
                continue;
            }
            let shown = relative(&path, &self.root).display().to_string();
            let into = if gone_unseen {
                &mut fleeting
            } else {
                &mut by_service
            };
            for s in wanted {
                into.entry(s).or_default().push(shown.clone());
            }
        }
        for (s, paths) in fleeting {
            by_service.entry(s).or_insert(paths);
        }
        let mut out: Vec<_> = by_service.into_iter().collect();
        out.sort();
        out
    }
}

/// The folders to walk: each given one that isn't inside another (a folder once).
pub(super) fn trees(folders: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let folders: BTreeSet<PathBuf> = folders.into_iter().collect();
    folders
        .iter()
        .filter(|f| !folders.iter().any(|o| o != *f && f.starts_with(o)))
        .cloned()
        .collect()
}

/// `path` as seen from `base` (`src/x.rs`, or `../lib/x.rs` for a file beside the stack's folder).
fn relative(path: &Path, base: &Path) -> PathBuf {
    let common = path
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    let up = base.components().count() - common;
    std::iter::repeat_n(Component::ParentDir, up)
        .chain(path.components().skip(common))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dir: &Path, watch: &[&str], ignore: &[&str]) -> Rules {
        let w: Vec<String> = watch.iter().map(|s| s.to_string()).collect();
        let i: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        Rules {
            root: dir.to_path_buf(),
            trees: vec![dir.to_path_buf()],
            dirs: Default::default(),
            gitignores: Vec::new(),
            services: vec![ServiceRules {
                service: ServiceId(0),
                cwd: dir.to_path_buf(),
                watch: globset(&w).unwrap(),
                ignore: globset(&i).unwrap(),
            }],
            hashes: HashMap::new(),
        }
    }

    #[test]
    fn routes_matching_files_and_skips_ignored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for f in [
            "src/a.rs",
            "src/b.tmp",
            "target/x.rs",
            "src/.#a.rs",
            "src/a.rs.swp",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let mut r = rules(&root, &["src/**"], &["**/*.tmp"]);
        let paths = [
            "src/a.rs",
            "src/b.tmp",
            "target/x.rs",
            "src/.#a.rs",
            "src/a.rs.swp",
        ]
        .iter()
        .map(|f| root.join(f))
        .collect();
        assert_eq!(
            r.route(paths),
            vec![(ServiceId(0), vec!["src/a.rs".to_string()])]
        );
    }

    #[test]
    fn folders_inside_another_are_not_walked_twice() {
        let t = |s: &str| PathBuf::from(s);
        assert_eq!(
            trees([
                t("/s/stack"),
                t("/s/stack/api"),
                t("/s/lib"),
                t("/s/lib"),
                t("/s/libx")
            ]),
            [t("/s/lib"), t("/s/libx"), t("/s/stack")]
        );
        assert_eq!(trees([t("/s/stack"), t("/s")]), [t("/s")]);
    }

    #[test]
    fn paths_are_shown_from_the_stack_folder() {
        let root = Path::new("/s/stack");
        assert_eq!(
            relative(Path::new("/s/stack/src/a.rs"), root),
            Path::new("src/a.rs")
        );
        assert_eq!(
            relative(Path::new("/s/lib/a.rs"), root),
            Path::new("../lib/a.rs")
        );
        assert_eq!(
            relative(Path::new("/other/a.rs"), root),
            Path::new("../../other/a.rs")
        );
    }

    #[test]
    fn unchanged_content_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let file = root.join("gen.rs");
        std::fs::write(&file, "same").unwrap();
        let mut r = rules(&root, &["*.rs"], &[]);
        assert_eq!(r.route([file.clone()].into()).len(), 1);
        std::fs::write(&file, "same").unwrap();
        assert!(
            r.route([file.clone()].into()).is_empty(),
            "rewritten with the same content"
        );
        std::fs::write(&file, "different").unwrap();
        assert_eq!(r.route([file].into()).len(), 1);
    }
}
