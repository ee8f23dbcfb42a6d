//! The environment: the stack's (`env_file`, then `[env]`), the derived `<NAME>_URL`s, and what
//! a `${...}` reads: the variables written before it, `services.NAME.port`, then devstack's own
//! environment.

use super::Resolver;
use super::stack::Table;
use crate::config::last_value;
use crate::config::raw::{EnvValue, RawStack, Spanned};
use crate::config::urls;
use std::collections::BTreeMap;
use std::path::Path;

/// A table of variables as written (`[env]`, a service's `env`).
pub(super) type EnvTable = BTreeMap<Spanned<String>, Spanned<EnvValue>>;

/// What a `${...}` reads besides the variables written before it.
pub(super) struct Scope<'a> {
    pub table: &'a Table,
    /// Variables of devstack's own environment.
    pub process_env: &'a dyn Fn(&str) -> Option<String>,
}

impl Scope<'_> {
    /// The value of `${name}`, where `env` holds the variables written before it.
    pub fn lookup(&self, env: &[(String, String)], name: &str) -> Result<String, String> {
        if let Some(r) = self.service_port(name) {
            return r;
        }
        last_value(env, name)
            .map(str::to_string)
            .or_else(|| (self.process_env)(name))
            .ok_or_else(|| undefined_message(name))
    }

    /// `${services.NAME.port}`; None for a name that does not start with `services.`.
    fn service_port(&self, name: &str) -> Option<Result<String, String>> {
        let rest = name.strip_prefix("services.")?;
        let Some((svc, field)) = rest.rsplit_once('.') else {
            return Some(Err(format!(
                "`${{{name}}}`: write `${{services.NAME.port}}`"
            )));
        };
        Some(match (self.table.id(svc), field) {
            (Some(id), "port") => self.table.ports[id]
                .map(|p| p.to_string())
                .ok_or_else(|| format!("service `{svc}` has no `port`")),
            (Some(_), other) => Err(format!(
                "`${{services.{svc}.{other}}}`: only `port` can be read from a service"
            )),
            (None, _) => Err(self.table.unknown_service_message(svc)),
        })
    }
}

impl Resolver<'_> {
    /// The stack's environment: `env_file`, then `[env]` (devstack's own is read through the
    /// scope, and inherited by the services).
    pub(super) fn stack_env(
        &mut self,
        stack: &RawStack,
        table: &EnvTable,
        root: &Path,
        scope: &Scope,
    ) -> Vec<(String, String)> {
        let mut env = self.env_file(stack, root);
        self.extend_env(&mut env, table, scope);
        env
    }

    fn env_file(&mut self, stack: &RawStack, root: &Path) -> Vec<(String, String)> {
        let mut env = Vec::new();
        let Some(env_file) = &stack.env_file else {
            return env;
        };
        let path = root.join(env_file.get_ref());
        match dotenvy::from_path_iter(&path) {
            Ok(iter) => {
                for item in iter {
                    match item {
                        Ok(kv) => env.push(kv),
                        Err(e) => {
                            self.error(
                                env_file.span(),
                                format!("cannot parse env_file {}: {e}", path.display()),
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                self.error(
                    env_file.span(),
                    format!("cannot read env_file {}: {e}", path.display()),
                )
                .help = Some("create the file, or remove `env_file`".into());
            }
        }
        env
    }

    /// Add a table's variables to `env` in the order they are written, each interpolated with
    /// what comes before it (a later one may use an earlier one).
    pub(super) fn extend_env(
        &mut self,
        env: &mut Vec<(String, String)>,
        table: &EnvTable,
        scope: &Scope,
    ) {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (key, value) in entries {
            let value = Spanned::new(value.span(), value.get_ref().0.clone());
            let v = self.expand(&value, &|n| scope.lookup(env, n));
            env.push((key.get_ref().clone(), v));
        }
    }

    /// Every `<NAME>_URL` devstack derives, but none set in its own environment.
    pub(super) fn urls(&self, table: &Table) -> Vec<(String, String)> {
        let schemes: Vec<&'static str> = table
            .services
            .values()
            .map(|(name, raw)| {
                urls::scheme(
                    name.get_ref(),
                    raw.run.as_ref().map(|r| r.get_ref()),
                    super::remote::protocol(raw),
                )
            })
            .collect();
        // Derived, so what the user set under the same name wins: devstack's own environment
        // (which the services inherit) here, env_file and [env] by coming later in each list.
        urls::url_env(
            table
                .names
                .iter()
                .zip(table.ports.values())
                .zip(&schemes)
                .map(|((n, p), s)| (n.as_str(), *p, *s)),
            |var| (self.process_env)(var).is_some(),
        )
    }
}

/// The URLs as the services see them: the stack's environment's value where it sets one.
pub(super) fn as_seen(
    urls: Vec<(String, String)>,
    stack_env: &[(String, String)],
) -> Vec<(String, String)> {
    urls.into_iter()
        .map(|(k, v)| {
            let v = last_value(stack_env, &k).map_or(v, str::to_string);
            (k, v)
        })
        .collect()
}

fn undefined_message(name: &str) -> String {
    format!(
        "undefined variable `{name}`: set it in the environment, `env_file` or [env]; write `$${{` for a literal `${{`, or `${name}` without braces to let the shell expand it"
    )
}
