//! From the file as written (`raw`) to the `Config`, in the order a later part reads an earlier
//! one: the stack's settings and the table of its services (`stack.rs`), the gRPC schemas of
//! `capture` (`protos.rs`), the environment every `${...}` reads (`env.rs`), each service
//! (`service.rs`, its probe in `health.rs`), then the dependencies between them and the start
//! order (`deps.rs`), and the fault scenarios (`faults.rs`). Every problem is a `Diagnostic` at
//! its place in the file, and none stops the others from being found: the `Config` comes only
//! when there is none.

mod container;
mod deps;
mod env;
mod faults;
mod health;
mod protos;
mod remote;
mod service;
mod stack;

use super::diag::{self, Diagnostic};
use super::interp::interpolate;
use super::raw::{RawFile, Spanned};
use super::{CommandLine, Config, ConfigErrors, Service, Services};
use env::Scope;
use service::Shared;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One resolution of a file's text: what it reads besides the text, and the problems found.
pub(super) struct Resolver<'a> {
    file: &'a Path,
    src: &'a str,
    /// Variables of devstack's own environment.
    process_env: &'a dyn Fn(&str) -> Option<String>,
    /// Picks a proxied service's private port.
    private_port: &'a dyn Fn() -> Option<u16>,
    errors: Vec<Diagnostic>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        file: &'a Path,
        src: &'a str,
        process_env: &'a dyn Fn(&str) -> Option<String>,
        private_port: &'a dyn Fn() -> Option<u16>,
    ) -> Self {
        Resolver {
            file,
            src,
            process_env,
            private_port,
            errors: Vec::new(),
        }
    }
}

impl Resolver<'_> {
    pub(super) fn resolve(mut self, raw: RawFile) -> Result<Config, ConfigErrors> {
        let root = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let settings = self.settings(&raw.stack, &root);
        let protos = self.stack_protos(&raw.stack.capture, &root);
        let table = self.table(raw.services);
        let images = table.services.values().any(|(_, s)| s.image.is_some());
        let engine = self.container_engine(&raw.stack, images);
        let scope = Scope {
            table: &table,
            process_env: self.process_env,
        };
        let stack_env = self.stack_env(&raw.stack, &raw.env, &root, &scope);
        let stack_id = root
            .canonicalize()
            .unwrap_or_else(|_| root.clone())
            .display()
            .to_string();
        let urls = self.urls(&table);
        let shared = Shared {
            root: &root,
            stack_id: &stack_id,
            stack_name: &settings.name,
            engine: engine.as_deref(),
            grace: settings.grace,
            capture: &raw.stack.capture,
            protos,
            env: urls.iter().chain(&stack_env).cloned().collect(),
            scope,
        };
        let mut services: Services<Service> = table
            .services
            .iter()
            .map(|(id, (name, raw))| self.service(id, name, raw, &shared))
            .collect();
        self.dependencies(&table, &mut services);
        let faults = self.scenarios(&raw.faults, &table);

        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let order = deps::start_order(&services);
        Ok(Config {
            container_engine: engine,
            file: self.file.to_path_buf(),
            root,
            stack_id,
            urls: env::as_seen(urls, &stack_env),
            name: settings.name,
            debounce: settings.debounce,
            scrollback: settings.scrollback,
            capture: settings.capture,
            services,
            order,
            faults,
        })
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) -> &mut Diagnostic {
        self.errors
            .push(Diagnostic::at(self.file, self.src, span, message));
        self.errors.last_mut().expect("just pushed")
    }

    /// Interpolate a spanned string, reporting an undefined variable at its own column.
    fn expand(
        &mut self,
        value: &Spanned<String>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> String {
        match interpolate(value.get_ref(), lookup) {
            Ok(s) => s,
            Err(e) => {
                let at = e.offset..e.offset + e.len;
                let span = diag::value_span(self.src, value.span(), value.get_ref(), at);
                self.error(span, e.message);
                value.get_ref().clone()
            }
        }
    }

    fn expand_command(
        &mut self,
        cmd: &Spanned<CommandLine>,
        lookup: &dyn Fn(&str) -> Result<String, String>,
    ) -> CommandLine {
        // Offsets inside an array aren't tracked; the whole value is underlined there.
        match cmd.get_ref() {
            CommandLine::Shell(s) => {
                CommandLine::Shell(self.expand(&Spanned::new(cmd.span(), s.clone()), lookup))
            }
            CommandLine::Exec(argv) => CommandLine::Exec(
                argv.iter()
                    .map(|a| match interpolate(a, lookup) {
                        Ok(v) => v,
                        Err(e) => {
                            self.error(cmd.span(), e.message);
                            a.clone()
                        }
                    })
                    .collect(),
            ),
        }
    }
}
