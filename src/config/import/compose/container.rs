//! An image-only service, when a container engine (podman, docker) is on the PATH: an `image`
//! service of devstack's, with its command, port, volumes and health check as compose says them
//! (the check run inside the container, `exec = true`). Without an engine, `images.rs` runs a
//! well-known server's program in its place, as before.

use super::super::{Context, Health, Svc, command_line};
use super::images::Known;
use super::text;
use crate::config::container::ENGINES;
use serde_norway::Value;

/// The engine `init` found on the PATH, if any.
pub(super) fn engine(cx: &Context) -> Option<&'static str> {
    ENGINES.into_iter().find(|e| cx.installed.contains(*e))
}

/// The service runs `image` through `engine`: its compose command (`words`) replaces the
/// image's, its port is the container's (`container`: the first TCP port's target and where it
/// was published), a well-known server's usual port and check when compose gives none.
pub(super) fn in_container(
    svc: &mut Svc,
    image: &str,
    engine: &str,
    words: &[String],
    container: Option<(u16, Option<u16>)>,
    known: Option<&Known>,
) {
    svc.image = Some(image.to_string());
    svc.note(format!(
        "image {image}: run through {engine}, published on a private port behind devstack's proxy"
    ));
    if !words.is_empty() {
        svc.run = Some(command_line(words));
    }
    let port = container
        .map(|(target, _)| target)
        .or(known.map(|k| k.port));
    svc.port = port;
    if let (Some((target, Some(published))), Some(_)) = (container, port)
        && published != target
    {
        svc.warn(format!(
            "ports: published on host port {published} in compose; devstack listens on the container's port {target} (set `port` to change that only if the server listens there too)"
        ));
    }
    if let (Some(k), Some(port)) = (known, port) {
        svc.health = k.inside_check(port).map(|cmd| Health {
            kind: "cmd",
            value: cmd,
            exec: true,
            ..Health::default()
        });
    }
}

/// `volumes` of an image service: named volumes and folders bound in, in compose's short form
/// (`name:/path[:ro]`, `./dir:/path`) or long form (`{ source, target }`); the rest said.
pub(super) fn volumes(svc: &mut Svc, v: &Value) {
    for entry in v.as_sequence().into_iter().flatten() {
        let written = match entry {
            Value::Mapping(m) => {
                let get = |k: &str| m.get(k).and_then(text);
                match (get("source"), get("target"), get("type").as_deref()) {
                    (Some(s), Some(t), None | Some("volume" | "bind")) => Some(format!("{s}:{t}")),
                    _ => None,
                }
            }
            other => text(other),
        };
        match written {
            // An anonymous volume (`/data` alone) goes with its container, as it does in compose.
            Some(w) if w.contains(':') => svc.volumes.push(w),
            Some(w) => svc.note(format!(
                "volumes {w}: anonymous, so it goes with its container (as with `compose down`)"
            )),
            None => svc.warn("volumes: a long-form entry devstack can't read (tmpfs, npipe, or no source): left out"),
        }
    }
}
