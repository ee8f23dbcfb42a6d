//! The gRPC schemas of `capture`: `[stack.capture] proto` read once, each service's own `proto`
//! added to a copy of them (a pool's copy is cheap: it shares what it holds). A file that is
//! missing or does not compile is an error at its place in `devstack.toml`.

use super::Resolver;
use crate::config::capture::{RawCapture, RawStackCapture};
use crate::config::protos;
use crate::config::raw::Spanned;
use prost_reflect::DescriptorPool;
use std::path::{Path, PathBuf};

/// The stack's schemas, and the folders every `.proto` file's imports are looked up in.
pub(super) struct Protos {
    pool: Option<DescriptorPool>,
    includes: Vec<PathBuf>,
}

impl Resolver<'_> {
    pub(super) fn stack_protos(&mut self, capture: &RawStackCapture, root: &Path) -> Protos {
        let mut includes = Vec::new();
        for folder in &capture.proto_path {
            let dir = root.join(folder.get_ref());
            if !dir.is_dir() {
                self.error(
                    folder.span(),
                    format!("proto_path `{}` is not a directory", dir.display()),
                );
            }
            includes.push(dir);
        }
        let mut stack = Protos {
            pool: None,
            includes,
        };
        stack.pool = self.read_protos(None, &capture.proto, root, &stack.includes);
        stack
    }

    /// A service's schemas: the stack's and its own (None: none, or it keeps nothing).
    pub(super) fn service_protos(
        &mut self,
        stack: &Protos,
        capture: Option<&RawCapture>,
        root: &Path,
    ) -> Option<DescriptorPool> {
        match capture {
            Some(RawCapture::On(false)) => None,
            Some(RawCapture::Table(own)) if !own.proto.is_empty() => {
                self.read_protos(stack.pool.clone(), &own.proto, root, &stack.includes)
            }
            _ => stack.pool.clone(),
        }
    }

    /// `files` added to `pool` (a new one when None); None when there is nothing in it.
    fn read_protos(
        &mut self,
        pool: Option<DescriptorPool>,
        files: &[Spanned<String>],
        root: &Path,
        includes: &[PathBuf],
    ) -> Option<DescriptorPool> {
        if files.is_empty() {
            return pool;
        }
        let mut pool = pool.unwrap_or_default();
        for file in files {
            if let Err(e) = protos::add(&mut pool, &root.join(file.get_ref()), includes) {
                self.error(
                    file.span(),
                    format!("can't read the gRPC schema `{}`: {e}", file.get_ref()),
                )
                .help = Some("give a `.proto` file that compiles (`proto_path` in [stack.capture] lists the folders its imports are in), or a FileDescriptorSet (`protoc --descriptor_set_out`, `buf build -o`)".into());
            }
        }
        Some(pool)
    }
}
