//! `devstack init --from FILE`: Procfiles, compose files and process-compose files as their
//! projects document them, translated into a `devstack.toml` that passes `devstack check`, with
//! what could not be translated in comments and in warnings on stderr.

mod common;

use common::BIN;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Out {
    code: i32,
    stderr: String,
}

fn devstack(dir: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr),
    }
}

/// A project folder named `shop` (the stack's name in the snapshots) holding these files.
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    (tmp, dir)
}

/// `init --from FILE` succeeds; the config it wrote passes `check`; its text and the stderr.
fn translate(dir: &Path, file: &str) -> (String, String) {
    let out = devstack(dir, &["init", "--from", file]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    let check = devstack(dir, &["check"]);
    assert_eq!(check.code, 0, "{}\n{toml}", check.stderr);
    (toml, out.stderr)
}

// ---- Procfile ----

#[test]
fn procfile_rails_with_release_worker_and_env() {
    let (_tmp, dir) = project(&[
        (
            "Procfile",
            "# Heroku runs release before the new dynos start\n\
             release: bundle exec rails db:migrate\n\
             web: bundle exec puma -C config/puma.rb\n\
             worker: bundle exec sidekiq -C config/sidekiq.yml\n",
        ),
        (
            ".env",
            "RAILS_ENV=development\nREDIS_URL=redis://localhost:6379/0\n",
        ),
        (".gitignore", "/log/*\n"),
    ]);
    let (toml, stderr) = translate(&dir, "Procfile");
    insta::assert_snapshot!(toml);
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(stderr.contains("wrote"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "/log/*\n.devstack/\n"
    );
    // The plan: release first, as a one-shot task the others wait for; .env read by devstack.
    let plan = devstack(&dir, &["check"]).stderr;
    assert!(plan.contains("1. release (one-shot task)"), "{plan}");
    assert!(plan.contains("after: release (completed)"), "{plan}");
}

#[test]
fn procfile_node_ports_go_to_web_then_to_whoever_reads_port() {
    let (_tmp, dir) = project(&[(
        "Procfile",
        "web: node server.js\n\
         worker: node worker.js\n\
         api: node api.js --port $PORT\n\
         docs: npx http-server docs -p ${PORT}\n",
    )]);
    let (toml, stderr) = translate(&dir, "Procfile");
    insta::assert_snapshot!(toml);
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(toml.contains("[services.web]\nrun = \"node server.js\"\nport = 5000\n"));
    assert!(toml.contains("port = 5100") && toml.contains("port = 5200"));
}

#[test]
fn procfile_dev_with_bad_and_duplicate_lines_warns_and_keeps_them_as_comments() {
    let (_tmp, dir) = project(&[(
        "Procfile.dev",
        "web: python manage.py runserver 0.0.0.0:$PORT\n\
         celery: celery -A proj worker -l info --concurrency=${CELERY_CONCURRENCY}\n\
         beat: celery -A proj beat\n\
         celery: celery -A proj worker\n\
         this is not a process line\n",
    )]);
    let (toml, stderr) = translate(&dir, "Procfile.dev");
    insta::assert_snapshot!(toml);
    assert!(
        stderr.contains(
            "warning: Procfile.dev: line 4: `celery` is defined twice; the first one is kept"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: Procfile.dev: line 5: not a `name: command` line"),
        "{stderr}"
    );
    assert!(
        toml.contains("# line 5: not a `name: command` line, left out: this is not a process line")
    );
    // `${VAR}` is left to the shell, as foreman does, so `check` needs no such variable.
    assert!(
        toml.contains("--concurrency=$${CELERY_CONCURRENCY}"),
        "{toml}"
    );
}

#[test]
fn init_from_refuses_to_overwrite_without_force() {
    let (_tmp, dir) = project(&[("Procfile", "web: ruby app.rb -p $PORT\n")]);
    std::fs::write(dir.join("devstack.toml"), "# mine\n").unwrap();
    let out = devstack(&dir, &["init", "--from", "Procfile"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("devstack.toml")).unwrap(),
        "# mine\n"
    );
    let out = devstack(&dir, &["init", "--from", "Procfile", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let toml = std::fs::read_to_string(dir.join("devstack.toml")).unwrap();
    assert!(toml.contains("run = \"ruby app.rb -p $PORT\""), "{toml}");
}

#[test]
fn a_folder_without_config_suggests_translating_what_it_has() {
    let (_tmp, dir) = project(&[("Procfile", "web: ruby app.rb -p $PORT\n")]);
    for args in [&[][..], &["up"][..]] {
        let out = devstack(&dir, args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("`devstack init --from Procfile` translates the Procfile here"),
            "{}",
            out.stderr
        );
    }
    // Nothing to translate: only the starter is suggested.
    let (_tmp2, empty) = project(&[]);
    let out = devstack(&empty, &["up"]);
    assert!(out.stderr.contains("`devstack init` writes a starter one"));
    assert!(!out.stderr.contains("--from"), "{}", out.stderr);
}

#[test]
fn an_unknown_format_is_refused() {
    let (_tmp, dir) = project(&[("notes.txt", "hello world\n")]);
    let out = devstack(&dir, &["init", "--from", "notes.txt"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a Procfile"), "{}", out.stderr);
    assert!(!dir.join("devstack.toml").exists());
}
